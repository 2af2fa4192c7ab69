"""``tuneyard validate`` and the release gate: a GGUF export in real llama.cpp against its source model."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

QUICK_VALIDATE = ("--samples", "8", "--max-new-tokens", "4", "-q")


@pytest.fixture(scope="module")
def topic_yard(smol_decoder, chat_topics, tmp_path_factory) -> tuple[Path, Path]:
    """A yard holding a tiny decoder fine-tuned in full to answer the topic questions, and the run.

    12 epochs at a high learning rate: it answers most validation questions right (about 0.9),
    while the random base it started from answers none.
    """
    from tuneyard.cli import main

    yard = tmp_path_factory.mktemp("yard")
    args = ["--yard", str(yard), "finetune", "--checkpoint", str(smol_decoder), "--data", str(chat_topics)]
    args += ["--strategy", "full", "--epochs", "12", "--batch-size", "8", "--learning-rate", "2e-2"]
    try:
        main([*args, "--max-length", "96", "--name", "answerer", "-q"])
    except SystemExit as done:
        assert done.code in (0, None)
    return yard, next(yard.glob("models/finetuned/llama/full/answerer"))


def exported(cli, yard: Path, checkpoint: Path, *args: object) -> Path:  # type: ignore[no-untyped-def]
    result = cli("--yard", yard, "export", "--checkpoint", checkpoint, *args)
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1].removeprefix("saved ")).parent


def test_an_f16_export_answers_as_its_source_does(cli, topic_yard) -> None:
    yard, run = topic_yard
    export = exported(cli, yard, run / "best", "--no-validate")
    # named as a path inside the yard, from elsewhere
    result = cli(
        "--yard", yard, "validate", export.relative_to(yard), *QUICK_VALIDATE, "--min-accuracy", "0.6"
    )
    assert result.exit_code == 0, result.stderr
    manifest = json.loads((export / "manifest.json").read_text())
    checks = manifest["metrics"]["validation"]
    assert manifest["status"] == "complete" and checks["passed"] == 1.0
    assert (
        checks["rows"] == 8
        and checks["tokenizer_identical"] == 1.0
        and checks["chat_template_identical"] == 1.0
    )
    assert checks["top1_agreement"] >= 0.99 and checks["greedy_identical"] == 1.0
    assert abs(checks["perplexity_change"]) < 0.01
    assert checks["accuracy_gguf"] == checks["accuracy_hf"] >= 0.6
    assert manifest["config"]["validation"]["samples"] == 8
    answers = [json.loads(line) for line in (export / "validation" / "answers.jsonl").open()]
    assert len(answers) == 8 and all(line["llama_cpp"] == line["transformers"] for line in answers)
    assert {line["reference"] for line in answers} == {"sports", "cooking"}
    assert "validation/answers.jsonl" in {entry["path"] for entry in manifest["files"]}
    table = result.stdout
    assert "next-token top-1 agreement" in table and "passed" in table and export.name in table


def test_the_perplexity_is_the_source_models_own(cli, topic_yard) -> None:
    """The transformers side's perplexity is the model's loss on the conversations, computed plainly."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneyard.data.options import DataOptions
    from tuneyard.task_types.data_loading import load_data

    yard, run = topic_yard
    export = next(yard.glob("exports/*_f16"), None) or exported(cli, yard, run / "best", "--no-validate")
    assert cli("--yard", yard, "validate", export, *QUICK_VALIDATE).exit_code == 0
    checks = json.loads((export / "manifest.json").read_text())["metrics"]["validation"]
    data = load_data(DataOptions(data=json.loads((run / "manifest.json").read_text())["config"]["data"]))
    rows = data.split("validation").select(range(8))
    model = AutoModelForCausalLM.from_pretrained(run / "best")
    tokenizer = AutoTokenizer.from_pretrained(run / "best")
    losses, tokens = 0.0, 0
    for prompt, completion in zip(rows["prompt"], rows["completion"], strict=True):
        ids = tokenizer.apply_chat_template(prompt + completion, return_dict=True)["input_ids"]
        with torch.inference_mode():
            loss = model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss
        losses += float(loss) * (len(ids) - 1)
        tokens += len(ids) - 1
    assert checks["positions"] == tokens
    assert checks["perplexity_hf"] == pytest.approx(math.exp(losses / tokens), rel=1e-4)


def test_an_export_of_the_wrong_weights_fails_the_gate(cli, topic_yard, smol_decoder) -> None:
    """Exported from the base instead of the tuned weights: the grade drops, the export is marked failed."""
    yard, run = topic_yard
    wrong = exported(cli, yard, smol_decoder, "--no-validate", "--name", "wrong")
    result = cli("--yard", yard, "validate", wrong, "--data", yard / "no-such-data", "-q")
    assert result.exit_code == 2  # a data folder that does not exist is a user error
    data = json.loads((run / "manifest.json").read_text())["config"]["data"]
    result = cli("--yard", yard, "validate", wrong, "--data", data, *QUICK_VALIDATE, "--min-accuracy", "0.6")
    assert result.exit_code == 1
    assert "accuracy through llama.cpp is 0.000, under --min-accuracy 0.6" in result.stderr
    manifest = json.loads((wrong / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["metrics"]["validation"]["accuracy_gguf"] == 0.0
    assert "under --min-accuracy" in manifest["stop_reason"]
    listed = cli("--yard", yard, "runs", "ls", "--kind", "export", "--status", "failed", "-f", "json")
    assert [row["name"] for row in json.loads(listed.stdout)] == ["wrong_f16"]


def test_exports_of_a_run_validate_by_default_and_gate_the_export(cli, topic_yard) -> None:
    yard, run = topic_yard
    result = cli(
        "--yard", yard, "export", "--checkpoint", run, "--quant", "q8_0", "--name", "gated",
        *QUICK_VALIDATE, "--min-accuracy", "1.01",
    )  # fmt: skip
    assert result.exit_code == 2 and "min_accuracy" in result.stderr  # an accuracy above 1 is refused first
    assert not (yard / "exports" / "gated_q8_0").exists()
    result = cli(
        "--yard", yard, "export", "--checkpoint", run, "--quant", "q8_0", "--name", "gated", *QUICK_VALIDATE
    )
    assert result.exit_code == 0, result.stderr
    checks = json.loads((yard / "exports" / "gated_q8_0" / "manifest.json").read_text())["metrics"][
        "validation"
    ]
    assert checks["rows"] == 8 and checks["top1_agreement"] > 0.9


def test_bad_input_names_the_problem(cli, topic_yard, smol_decoder, tmp_path) -> None:
    yard, run = topic_yard
    result = cli("--yard", yard, "validate", run, "-q")
    assert result.exit_code == 2 and "is not a GGUF export" in result.stderr
    result = cli("--yard", yard, "export", "--checkpoint", smol_decoder, "--name", "nodata", "-q")
    assert result.exit_code == 2 and "--no-validate" in result.stderr and "--data" in result.stderr
    assert not (yard / "exports" / "nodata_f16").exists()  # refused before converting


def test_llama_cpp_computes_on_as_many_threads_as_torch() -> None:
    """A process held to one thread (OMP_NUM_THREADS=1 in each CI worker, a grid cell's share) runs
    llama.cpp on one: its threads spin-wait for each other, and two on a busy core made the real
    pipeline test's 4 answers of 8 tokens take 28 CPU s instead of 1.3."""
    import torch

    from tuneyard.export.llama_runtime import LlamaRuntime
    from tuneyard.models.gguf import packaged_gguf

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        runtime = LlamaRuntime(packaged_gguf(), 64)
    finally:
        torch.set_num_threads(threads)
    try:
        assert runtime.threads == 1
        assert runtime.llama.context_params.n_threads == runtime.llama.context_params.n_threads_batch == 1
    finally:
        runtime.close()
