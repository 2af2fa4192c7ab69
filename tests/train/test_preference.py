"""Preference tuning (DPO, ORPO, KTO, SimPO through TRL) on tiny decoders: rows, loss, reference, runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_errors import assert_user_error, yard_artifacts
from topic_data import write_topic_preferences

from tuneyard.task_types.data_loading import load_data

QUICK = ("--epochs", "1", "--batch-size", "4", "--learning-rate", "1e-3", "--max-length", "48")


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_topic_preferences(tmp_path_factory.mktemp("data") / "pairs", {"train": 8, "validation": 4})


@pytest.fixture(scope="module")
def unpaired(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "unpaired"
    return write_topic_preferences(folder, {"train": 8, "validation": 4}, shape="unpaired")


def test_the_objectives_are_one_table() -> None:
    from typing import get_args

    from tuneyard.task_types.preference.objectives import OBJECTIVES
    from tuneyard.task_types.preference.options import Objective

    assert set(get_args(Objective)) == set(OBJECTIVES)


@pytest.mark.parametrize("shape", ["pairs", "conversations"])
def test_pairs_are_read_as_conversations_from_their_columns(shape: str, tmp_path) -> None:
    from tuneyard.data.options import DataOptions

    folder = write_topic_preferences(tmp_path / shape, {"train": 4}, shape=shape)
    data = load_data(DataOptions(data=str(folder)))
    assert data.spec.task_type == "preference" and data.spec.problem == "pairs"  # no --task-type
    row = data.splits["train"][1]
    assert row["prompt"][-1]["role"] == "user" and row["prompt"][-1]["content"].startswith("which topic : ")
    assert [message["role"] for message in row["prompt"]] == (
        ["system", "user"] if shape == "conversations" else ["user"]
    )
    assert row["chosen"] == [{"role": "assistant", "content": "cooking"}]
    assert row["rejected"] == [{"role": "assistant", "content": "sports"}]
    assert row["reference"] == "cooking" and row["id"] == 1


def test_kto_rows_are_read_with_their_labels(unpaired) -> None:
    from tuneyard.data.options import DataOptions

    data = load_data(DataOptions(data=str(unpaired)))
    assert data.spec.task_type == "preference" and data.spec.problem == "unpaired"
    assert data.splits["train"]["label"][:4] == [True, True, False, False]
    assert data.splits["train"][2]["completion"] == [
        {"role": "assistant", "content": "cooking"}
    ]  # row 2 asks sports


def finetune(cli, yard: Path, checkpoint: Path, data: Path, *args: object):  # type: ignore[no-untyped-def]
    return cli("--yard", yard, "finetune", "--checkpoint", checkpoint, "--data", data, *QUICK, *args)


def test_rows_that_cannot_teach_a_preference_are_refused(cli, tiny_decoder, pairs, tmp_path) -> None:
    no_rejected = tmp_path / "no_rejected"
    no_rejected.mkdir()
    rows = [json.loads(line) for line in (pairs / "train.jsonl").read_text().splitlines()]
    (no_rejected / "train.jsonl").write_text(
        "".join(json.dumps({"prompt": r["prompt"], "chosen": r["chosen"]}) + "\n" for r in rows)
    )
    result = finetune(cli, tmp_path, tiny_decoder("llama"), no_rejected)
    assert_user_error(result, "has no 'rejected' column", "Add a 'rejected' answer to every row")

    same = tmp_path / "same"
    same.mkdir()
    rows[3]["rejected"] = rows[3]["chosen"]
    (same / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = finetune(cli, tmp_path, tiny_decoder("llama"), same)
    assert_user_error(
        result, "1 of 8 rows", "the same chosen and rejected answer (ids: 3)", "Drop those rows"
    )

    result = cli(
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        tiny_decoder("llama"),
        "--data",
        pairs,
        "--max-length",
        "8",
    )
    assert_user_error(
        result, "8 of 8 train rows have a prompt of --max-length 8 tokens or more", "Raise --max-length"
    )

    result = finetune(cli, tmp_path, tiny_decoder("llama"), pairs, "--objective", "kto")
    assert_user_error(result, "--objective kto trains on unpaired rows", "Use --objective dpo, orpo or simpo")
    result = finetune(cli, tmp_path, tiny_decoder("llama"), pairs, "--objective", "dpo", "--loss-type", "kto")
    assert_user_error(result, "loss_type 'kto' is not one of dpo's")
    assert not yard_artifacts(tmp_path)


def test_a_qlora_preference_run_is_refused_without_a_cuda_gpu(cli, tiny_decoder, pairs, tmp_path) -> None:
    result = finetune(
        cli, tmp_path, tiny_decoder("llama"), pairs, "--objective", "dpo", "--strategy", "qlora"
    )
    assert_user_error(
        result, "--strategy qlora needs a CUDA GPU with bitsandbytes", "no CUDA GPU", "--strategy lora"
    )
    assert not yard_artifacts(tmp_path)


def test_dpo_loss_is_computed_from_the_answer_tokens_log_probabilities(tiny_decoder, pairs, tmp_path) -> None:
    import torch
    import torch.nn.functional as F

    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import prepare_finetune
    from tuneyard.yard.root import Yard

    options = FinetuneOptions(
        checkpoint=str(tiny_decoder("llama")), data=str(pairs), max_length=48, eval_batch_size=4,
        task_options={"objective": "dpo", "beta": 0.5},
    )  # fmt: skip
    prepared = prepare_finetune(options, Yard.open(tmp_path))
    trainer = prepared.trainer()
    with torch.no_grad():  # the policy moves away from its frozen reference
        for parameter in prepared.model.parameters():
            parameter.add_(0.02 * torch.randn_like(parameter))
    metrics = trainer.evaluate()

    tokenizer, rows = prepared.tokenizer, prepared.data.splits["validation"]

    def answer_log_probability(model: torch.nn.Module, prompt: list, answer: list) -> float:
        start = len(tokenizer.apply_chat_template(prompt, add_generation_prompt=True)["input_ids"])
        ids = torch.tensor([tokenizer.apply_chat_template(prompt + answer)["input_ids"]])
        with torch.no_grad():
            log_probs = F.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
        per_token = log_probs.gather(1, ids[0, 1:, None])[:, 0]
        return float(per_token[start - 1 :].sum())

    policy, reference = prepared.model.eval(), trainer.ref_model
    logps = {
        (who, side): [answer_log_probability(model, row["prompt"], row[side]) for row in rows]
        for who, model in (("policy", policy), ("reference", reference))
        for side in ("chosen", "rejected")
    }
    margins = torch.tensor(
        [
            (pc - rc) - (pr - rr)
            for pc, pr, rc, rr in zip(
                logps["policy", "chosen"], logps["policy", "rejected"],
                logps["reference", "chosen"], logps["reference", "rejected"], strict=True,
            )
        ]
    )  # fmt: skip
    loss = float(-F.logsigmoid(0.5 * margins).mean())
    assert metrics["eval_logps/chosen"] == pytest.approx(sum(logps["policy", "chosen"]) / len(rows), abs=1e-4)
    assert metrics["eval_logps/rejected"] == pytest.approx(
        sum(logps["policy", "rejected"]) / len(rows), abs=1e-4
    )
    assert metrics["eval_rewards/margins"] == pytest.approx(float(0.5 * margins.mean()), abs=1e-4)
    assert metrics["eval_loss"] == pytest.approx(loss, abs=1e-4)
    assert abs(float(margins.mean())) > 1e-2  # the check compares a moved policy, not two equal models


def test_the_reference_is_the_frozen_start(tiny_decoder, pairs, tmp_path) -> None:
    import torch

    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import prepare_finetune
    from tuneyard.yard.root import Yard

    def prepared_trainer(strategy: str, name: str):  # type: ignore[no-untyped-def]
        options = FinetuneOptions(
            checkpoint=str(tiny_decoder("llama")), data=str(pairs), max_length=48, epochs=1, batch_size=4,
            learning_rate=1e-2, strategy=strategy, output_dir=str(tmp_path / name),
        )  # fmt: skip
        prepared = prepare_finetune(options, Yard.open(tmp_path))
        return prepared, prepared.trainer()

    prepared, trainer = prepared_trainer("full", "full")
    before = {name: value.clone() for name, value in trainer.ref_model.state_dict().items()}
    start = {name: value.clone() for name, value in prepared.model.state_dict().items()}
    trainer.train()
    after = trainer.ref_model.state_dict()
    assert all(torch.equal(before[name], after[name]) for name in before)
    assert all(torch.equal(before[name], start[name]) for name in before)  # the reference is the start
    assert any(not torch.equal(start[name], value) for name, value in prepared.model.state_dict().items())

    prepared, trainer = prepared_trainer("lora", "lora")
    assert trainer.ref_model is None and list(prepared.model.peft_config) == ["default"]  # no second copy
    base = {name: value.clone() for name, value in prepared.model.state_dict().items() if "lora_" not in name}
    trainer.train()
    now = prepared.model.state_dict()
    assert all(torch.equal(value, now[name]) for name, value in base.items())


@pytest.mark.parametrize(
    ("objective", "strategy"), [("dpo", "lora"), ("orpo", "full"), ("simpo", "full"), ("kto", "full")]
)
def test_each_objective_files_a_complete_run(
    objective, strategy, cli, tiny_decoder, pairs, unpaired, tmp_path
) -> None:
    data = unpaired if objective == "kto" else pairs
    result = finetune(
        cli, tmp_path, tiny_decoder("llama"), data, "--objective", objective, "--strategy", strategy
    )
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip())
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["task_type"] == "preference"
    options = manifest["config"]["task_options"]
    expected_beta = 2.0 if objective == "simpo" else 0.1
    assert options["objective"] == objective and options["beta"] == expected_beta
    assert options["reference"] == ("start" if objective in ("dpo", "kto") else "none")
    assert [parent["role"] for parent in manifest["parents"]][0] == "init"
    scores = manifest["metrics"][data.name]
    assert {"loss", "rewards/margins", "rewards/chosen"} <= set(scores)
    if objective != "kto":
        assert 0.0 <= scores["rewards/accuracies"] <= 1.0
    assert (run / "best").is_dir() and (run / "last").is_dir()
    log = (run / "training_log.csv").read_text().splitlines()
    assert len(log) >= 2  # a header and a row per evaluation

    if objective == "dpo":  # eval of the LoRA run: graded answers and the rewards on the pairs
        scored = tmp_path / "scored"
        args = (
            "--data",
            data,
            "--split",
            "validation",
            "--max-new-tokens",
            "2",
            "--output-dir",
            scored,
            "-q",
        )
        result = cli("--yard", tmp_path, "eval", "--checkpoint", run / "best", *args)
        assert result.exit_code == 0, result.stderr
        metrics = json.loads(next(scored.rglob("metrics.json")).read_text())["metrics"]
        assert {"exact", "perplexity", "rewards/accuracies", "rewards/margins"} <= set(metrics)
        assert "eval_loss" not in result.stdout + result.stderr  # not TRL's raw metrics dict


def test_a_killed_dpo_run_resumes_to_the_uninterrupted_result(
    cli, tuneyard_process, tiny_decoder, tmp_path
) -> None:
    import signal

    from test_resume import read_log, status, wait_for_checkpoint

    data = write_topic_preferences(tmp_path / "prefs", {"train": 16, "validation": 4})
    common = (
        "--yard", tmp_path, "finetune", "--checkpoint", tiny_decoder("llama"), "--data", data,
        "--strategy", "full", "--epochs", "2", "--batch-size", "4", "--max-length", "48", "--learning-rate",
        "1e-3", "--save-steps", "2", "--keep", "2", "--objective", "dpo", "--project", "p", "--quiet",
    )  # fmt: skip
    reference = cli(*common, "--name", "reference")
    assert reference.exit_code == 0, reference.stderr

    killed = tmp_path / "outputs" / "p" / "prefs" / "killed"
    process = tuneyard_process(*common, "--name", "killed")
    wait_for_checkpoint(killed, process, min_step=4)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert status(killed) == "running" and int(read_log(killed)[-1]["step"]) < 8, "killed after the end"
    resumed = cli("--yard", tmp_path, "finetune", "--resume", killed)
    assert resumed.exit_code == 0, resumed.stderr
    assert "from checkpoint-" in resumed.stderr and status(killed) == "complete"

    expected, got = read_log(Path(reference.stdout.strip())), read_log(killed)
    assert [row["step"] for row in got] == [row["step"] for row in expected]
    for want, have in zip(expected, got, strict=True):  # the reference after resuming is still the start
        for column in ("train_loss", "val_loss", "rewards/accuracies", "rewards/margins"):
            if want[column]:
                assert float(have[column]) == pytest.approx(float(want[column]), abs=1e-4), (column, want)
