"""Instruction tuning of decoders on chat rows: the data shapes, the answer-only loss, the run folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_errors import assert_user_error, yard_artifacts

from tuneyard.task_types.data_loading import load_data

QUICK = ("--epochs", "2", "--batch-size", "8", "--learning-rate", "1e-3", "--max-length", "64")
SHAPES = ("messages", "prompt_response", "system_user_assistant")


def read_log(run: Path) -> list[dict[str, str]]:
    import csv

    with open(run / "training_log.csv") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("shape", SHAPES)
def test_each_chat_shape_loads_as_prompt_and_answer(shape: str, chat_folder, tmp_path) -> None:
    from tuneyard.data.options import DataOptions

    folder = chat_folder(tmp_path / shape, {"train": 4, "validation": 2}, shape=shape)
    data = load_data(DataOptions(data=str(folder)))
    assert data.spec.task_type == "causal_lm"  # recognised from the columns, no --task-type
    row = data.splits["train"][1]
    assert row["completion"] == [{"role": "assistant", "content": "cooking"}]
    assert row["prompt"][-1]["role"] == "user" and row["prompt"][-1]["content"].startswith("which topic : ")
    expected_system = (
        [] if shape == "prompt_response" else [{"role": "system", "content": "answer with one word"}]
    )
    assert row["prompt"][:-1] == expected_system
    assert row["reference"] == "cooking" and row["id"] == 1


def test_system_prompt_and_reference_column(tmp_path) -> None:
    from tuneyard.data.options import DataOptions

    folder = tmp_path / "qa"
    folder.mkdir()
    rows = [
        {"question": "2 + 2 ?", "answer": "4", "gold": "four"},
        {"question": "1 + 1 ?", "answer": "2", "gold": "two"},
    ]
    (folder / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    options = DataOptions(
        data=str(folder),
        prompt_column="question",
        response_column="answer",
        reference_column="gold",
        system_prompt="be brief",
    )
    row = load_data(options).splits["train"][0]
    assert row["prompt"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "2 + 2 ?"},
    ]
    assert row["completion"] == [{"role": "assistant", "content": "4"}] and row["reference"] == "four"


def test_prompt_tokens_carry_label_minus_100_and_the_answer_is_learned(
    tiny_decoder, chat_topics, tmp_path
) -> None:
    from transformers import AutoTokenizer

    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import prepare_finetune
    from tuneyard.yard.root import Yard

    options = FinetuneOptions(checkpoint=str(tiny_decoder("llama")), data=str(chat_topics), max_length=64)
    prepared = prepare_finetune(options, Yard.open(tmp_path))
    trainer = prepared.trainer()
    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder("llama"))
    rows = prepared.data.splits["train"]
    for index in range(4):
        example = trainer.train_dataset[index]
        ids, labels = example["input_ids"], example["labels"]
        prompt = tokenizer.apply_chat_template(rows[index]["prompt"], add_generation_prompt=True)["input_ids"]
        assert ids[: len(prompt)] == prompt and all(label == -100 for label in labels[: len(prompt)])
        answer = [label for label in labels if label != -100]
        assert answer == ids[len(prompt) :]
        assert tokenizer.decode(answer) == f"{rows[index]['completion'][0]['content']} [SEP]"


def test_full_fine_tuning_files_a_complete_decoder_run(cli, tiny_decoder, chat_topics, tmp_path) -> None:
    import tuneyard

    result = cli(
        "--yard", tmp_path, "finetune", "--checkpoint", tiny_decoder("llama"), "--data", chat_topics, *QUICK
    )
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip())
    rows = read_log(run)
    assert list(rows[0])[:10] == [
        "epoch",
        "step",
        "train_loss",
        "val_loss",
        "perplexity",
        "entropy",
        "mean_token_accuracy",
        "lr",
        "cpu_rss_gib",
        "cpu_peak_rss_gib",
    ]
    for row in rows:
        assert float(row["perplexity"]) == pytest.approx(2.718281828 ** float(row["val_loss"]), rel=1e-4)
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])  # it learns to answer
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["arch"] == "llama"
    best = min(rows, key=lambda row: float(row["val_loss"]))
    assert manifest["metrics"]["chat_topics"]["perplexity"] == pytest.approx(float(best["perplexity"]))
    model = tuneyard.load(run / "best")
    assert type(model).__name__ == "LlamaForCausalLM"
    tokenizer = tuneyard.load_tokenizer(run / "best")
    assert (
        tokenizer.chat_template
        and tokenizer.apply_chat_template(
            [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
        )
        == "user : hi [SEP] assistant :"
    )


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_lora_on_chosen_layers_puts_adapters_only_there(
    arch, cli, tiny_decoder, chat_topics, tmp_path
) -> None:
    result = cli(
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        tiny_decoder(arch),
        "--data",
        chat_topics,
        "--strategy",
        "lora",
        "--lora-layers",
        "1",
        *QUICK,
    )
    assert result.exit_code == 0, result.stderr
    best = Path(result.stdout.strip()) / "best"
    config = json.loads((best / "adapter_config.json").read_text())
    assert config["task_type"] == "CAUSAL_LM" and config["layers_to_transform"] == [1]
    keys = list(load_file(str(best / "adapter_model.safetensors")))
    pattern = ".h.1." if arch == "gpt2" else ".layers.1."
    assert keys and all(pattern in key and "lora_" in key for key in keys)  # no head, no other layer


def test_a_tokenizer_without_chat_template_needs_one(cli, tiny_decoder, chat_topics, tmp_path) -> None:
    bare = tiny_decoder("llama", chat_template=False)
    result = cli("--yard", tmp_path, "finetune", "--checkpoint", bare, "--data", chat_topics, *QUICK)
    assert_user_error(result, "has no chat template", "--chat-template FILE")
    assert not yard_artifacts(tmp_path)

    template = tmp_path / "chat.jinja"
    template.write_text(
        "{% for m in messages %}{{ m['role'] }} says {{ m['content'] }} [SEP] {% endfor %}"
        "{% if add_generation_prompt %}assistant says{% endif %}"
    )
    result = cli(
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        bare,
        "--data",
        chat_topics,
        "--chat-template",
        template,
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--max-length",
        "64",
    )
    assert result.exit_code == 0, result.stderr
    saved = json.loads((Path(result.stdout.strip()) / "best" / "tokenizer_config.json").read_text())
    saved_template = (
        saved.get("chat_template")
        or (Path(result.stdout.strip()) / "best" / "chat_template.jinja").read_text()
    )
    assert "says" in saved_template  # best/ formats prompts the way it was trained

    # The base model, evaluated on chat rows: the task's template is used, the model needs none.
    scored = tmp_path / "base-eval"
    args = ("--data", chat_topics, "--split", "test", "--max-new-tokens", "2", "--output-dir", scored, "-q")
    result = cli("--yard", tmp_path, "eval", "--checkpoint", bare, *args)
    assert_user_error(result, "has no chat template", "--chat-template FILE")
    result = cli("--yard", tmp_path, "eval", "--checkpoint", bare, *args, "--chat-template", template)
    assert result.exit_code == 0, result.stderr
    prompt = json.loads((scored / "chat_topics_test" / "predictions.jsonl").read_text().splitlines()[0])[
        "prompt"
    ]
    assert prompt.endswith("assistant says")


def test_answers_longer_than_max_length_are_refused_and_cut_rows_counted(cli, tiny_decoder, tmp_path) -> None:
    folder = tmp_path / "long"
    folder.mkdir()
    short = {"prompt": "which topic : goal match", "response": "sports"}
    long_prompt = {"prompt": "which topic : " + " ".join(["goal"] * 21), "response": "sports"}  # 31 tokens
    long_answer = {"prompt": "which topic : goal", "response": " ".join(["sports"] * 40)}
    for split, rows in {"train": [short] * 6 + [long_prompt] * 2, "validation": [short] * 2}.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    flags = (
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        tiny_decoder("llama"),
        "--data",
        folder,
        "--epochs",
        "1",
    )

    cut = cli(*flags, "--max-length", "30")
    assert cut.exit_code == 0, cut.stderr
    assert (
        "2 of 8 train rows are longer than --max-length 30 tokens and lose the end of their answer"
        in cut.stderr
    )

    (folder / "validation.jsonl").write_text(json.dumps(long_answer) + "\n")
    refused = cli(*flags, "--max-length", "30", "--name", "refused")
    assert_user_error(
        refused,
        "1 of 1 validation rows have an answer that does not fit in --max-length 30",
        "Raise --max-length",
    )
    assert not (tmp_path / "models" / "finetuned" / "llama" / "full" / "refused").exists()


def test_data_without_chat_columns_names_the_shapes(cli, tiny_decoder, tmp_path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps({"question": "hi", "reply": "hello"}) + "\n")
    result = cli(
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        tiny_decoder("llama"),
        "--data",
        folder,
        "--task-type",
        "causal_lm",
    )
    assert_user_error(result, "has no chat columns; its columns are: question, reply", "--prompt-column")
    assert not yard_artifacts(tmp_path)


def test_a_conversation_must_end_with_the_answer(cli, tiny_decoder, tmp_path) -> None:
    folder = tmp_path / "unanswered"
    folder.mkdir()
    row = {"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": "anyone?"}]}
    (folder / "train.jsonl").write_text(json.dumps(row) + "\n")
    result = cli("--yard", tmp_path, "finetune", "--checkpoint", tiny_decoder("llama"), "--data", folder)
    assert_user_error(result, "row 0: a conversation must end with the assistant's answer")


def test_an_encoder_is_not_trained_on_chat_rows(cli, tiny_model, chat_topics, tmp_path) -> None:
    result = cli("--yard", tmp_path, "finetune", "--checkpoint", tiny_model("bert"), "--data", chat_topics)
    assert_user_error(result, "is a bert model, not a decoder language model")
    assert not yard_artifacts(tmp_path)


def test_a_decoder_run_killed_mid_training_resumes_to_the_uninterrupted_result(
    cli, run_killed_at, tiny_decoder, chat_topics, tmp_path
) -> None:
    # 32 rows / batch 4 = 8 steps per epoch, 2 epochs; evaluate + checkpoint every 4 steps.
    training = ("--epochs", "2", "--batch-size", "4", "--save-steps", "4", "--max-length", "64", "--quiet")
    flags = ("finetune", "--checkpoint", tiny_decoder("llama"), "--data", chat_topics, *training)
    reference = cli("--yard", tmp_path / "reference", *flags, "--name", "reference")
    assert reference.exit_code == 0, reference.stderr
    # killed as the third evaluation's scores reach the manifest (1 at the start + 2 before it)
    killed = run_killed_at(
        "killed/manifest.json", "--yard", tmp_path / "killed", *flags, "--name", "killed", nth=3
    )
    assert killed.returncode == 9, killed.stderr[-2000:]
    run = tmp_path / "killed" / "models" / "finetuned" / "llama" / "full" / "killed"
    resumed = cli("--yard", tmp_path / "killed", "finetune", "--resume", run)
    assert resumed.exit_code == 0, resumed.stderr

    expected, got = read_log(Path(reference.stdout.strip())), read_log(run)
    assert (
        [row["step"] for row in got] == [row["step"] for row in expected] == [str(4 * n) for n in range(1, 5)]
    )
    for want, have in zip(expected, got, strict=True):
        for column in ("train_loss", "val_loss", "perplexity", "mean_token_accuracy"):
            assert float(have[column]) == pytest.approx(float(want[column]), abs=1e-4), (column, want["step"])
    for subfolder in ("best", "last"):
        want = load_file(str(Path(reference.stdout.strip()) / subfolder / "model.safetensors"))
        have = load_file(str(run / subfolder / "model.safetensors"))
        assert all(have[key].allclose(want[key], atol=1e-5) for key in want), subfolder


@pytest.mark.slow
def test_lora_teaches_the_real_smollm2_to_answer_in_one_word(cli, smollm2_yard, tmp_path) -> None:
    """The real SmolLM2-135M-Instruct (its wheel's GGUF) on a slice of the real Debian section questions."""
    from tuneyard.models.gguf import packaged_gguf

    repo = Path(__file__).resolve().parents[2]
    data = tmp_path / "sections"
    data.mkdir()
    for split, rows in (("train", 96), ("validation", 12), ("test", 30)):
        lines = (repo / "data" / "debian_sections_chat" / f"{split}.jsonl").read_text().splitlines()
        (data / f"{split}.jsonl").write_text("\n".join(lines[:rows]) + "\n")
    answers = ("--data", data, "--split", "test", "--grader", "exact", "--max-new-tokens", "6", "-q")
    yard = ("--yard", smollm2_yard)
    base = cli(*yard, "eval", "--checkpoint", packaged_gguf(), *answers)
    assert base.exit_code == 0, base.stderr
    tuned = cli(
        *yard,
        "finetune",
        "--checkpoint",
        packaged_gguf(),
        "--data",
        data,
        "--strategy",
        "lora",
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--learning-rate",
        "1e-3",
        "--max-length",
        "256",
        "-q",
    )
    assert tuned.exit_code == 0, tuned.stderr
    run = Path(tuned.stdout.strip())
    assert cli(*yard, "eval", "--checkpoint", run, *answers).exit_code == 0

    imported = json.loads(
        (
            smollm2_yard / "models" / "imported" / "llama" / "SmolLM2-135M-Instruct.Q4_1" / "manifest.json"
        ).read_text()
    )
    before = imported["metrics"]["sections_test"]["exact"]
    after = json.loads((run / "manifest.json").read_text())["metrics"]["sections_test"]["exact"]
    print(f"test exact: before {before:.3f}, after {after:.3f}")
    # The instruct model explains instead of naming the section (0 of 30 exact here); 96 rows of
    # one epoch teach it to answer with the section alone (14 of 30 exact when this was written).
    assert before <= 0.1 and after - before >= 0.3, (before, after)


def test_frozen_needs_a_head_of_its_own(cli, tiny_decoder, chat_topics, tmp_path) -> None:
    # GPT-2's output layer is its token embedding matrix: freezing the base would train nothing.
    result = cli(
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        tiny_decoder("gpt2"),
        "--data",
        chat_topics,
        "--strategy",
        "frozen",
    )
    assert_user_error(result, "--strategy frozen trains only the task head", "Use --strategy lora or full")
    assert not yard_artifacts(tmp_path)


def test_packing_fills_sequences_with_several_rows(tiny_decoder, chat_topics, tmp_path) -> None:
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import prepare_finetune
    from tuneyard.yard.root import Yard

    options = FinetuneOptions(
        checkpoint=str(tiny_decoder("llama")), data=str(chat_topics), max_length=64, packing=True
    )
    prepared = prepare_finetune(options, Yard.open(tmp_path))
    trainer = prepared.trainer()
    packed = trainer.train_dataset
    assert len(packed) < len(prepared.data.splits["train"])  # 32 rows of ~20 tokens in fewer sequences
    assert all(len(row["input_ids"]) <= 64 for row in packed)
    assert sum(len(row["seq_lengths"]) for row in packed) == len(prepared.data.splits["train"])
    assert len(trainer.eval_dataset) == len(prepared.data.splits["validation"])  # validation is never packed


@pytest.mark.parametrize("shape", ["alpaca", "sharegpt"])
def test_alpaca_and_sharegpt_folders_fine_tune_at_a_length_that_fits_them(
    shape: str, cli, tiny_decoder, chat_folder, tmp_path
) -> None:
    from transformers import AutoTokenizer

    folder = chat_folder(tmp_path / shape, {"train": 6, "validation": 2}, shape=shape)
    checkpoint = tiny_decoder("llama")
    result = cli(
        "--yard", tmp_path, "finetune", "--checkpoint", checkpoint, "--data", folder, "--epochs", "1"
    )
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip())
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"

    # no --max-length: the longest train row's tokens, said in a note and recorded
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    rows = load_data_folder(folder)["train"]
    longest = max(
        len(tokenizer.apply_chat_template(row["prompt"] + row["completion"])["input_ids"]) for row in rows
    )
    assert f"note: --max-length {longest}, the longest train row's tokens, so no row is cut" in result.stderr
    assert manifest["config"]["max_length"] == longest


def load_data_folder(folder: Path) -> dict:
    from tuneyard.data.options import ColumnOptions
    from tuneyard.task_types.causal_lm.data import load_folder

    return load_folder(folder, ColumnOptions())[1]


def test_every_assistant_turn_of_a_conversation_is_learned(tiny_decoder, chat_folder, tmp_path) -> None:
    from transformers import AutoTokenizer

    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import prepare_finetune
    from tuneyard.yard.root import Yard

    folder = chat_folder(tmp_path / "sharegpt", {"train": 4, "validation": 2}, shape="sharegpt")
    options = FinetuneOptions(checkpoint=str(tiny_decoder("llama")), data=str(folder), max_length=64)
    trainer = prepare_finetune(options, Yard.open(tmp_path)).trainer()
    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder("llama"))
    for index, row in enumerate(load_data_folder(folder)["train"]):
        example = trainer.train_dataset[index]  # what TRL trains on, after its own preparation
        learned = [label for label in example["labels"] if label != -100]
        answer = row["completion"][0]["content"]
        assert tokenizer.decode(learned) == f"yes [SEP] {answer} [SEP]"  # both answers, nothing else


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        (
            {"conversations": [{"from": "narrator", "value": "hi"}, {"from": "gpt", "value": "hello"}]},
            "row 0: ShareGPT message from 'narrator' has no chat role",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "weather in Oslo?"},
                    {"role": "assistant", "tool_calls": [{"function": {"name": "weather", "arguments": {}}}]},
                    {"role": "tool", "content": "rain"},
                    {"role": "assistant", "content": "rain"},
                ]
            },
            "the chat template does not render tools, but the rows hold assistant tool_calls and 'tool'",
        ),
    ],
    ids=["sharegpt_unknown_role", "tools_without_template_support"],
)
def test_rows_that_cannot_be_formatted_are_refused_before_any_run(
    row: dict, problem: str, cli, tiny_decoder, tmp_path
) -> None:
    folder = tmp_path / "rows"
    folder.mkdir()
    (folder / "train.jsonl").write_text((json.dumps(row) + "\n") * 4)
    result = cli("--yard", tmp_path, "finetune", "--checkpoint", tiny_decoder("llama"), "--data", folder)
    assert_user_error(result, problem)
    assert not yard_artifacts(tmp_path)


def test_a_tokenizer_from_another_folder_trains_and_is_saved_with_the_run(
    cli, tiny_decoder, chat_topics, tmp_path
) -> None:
    from transformers import AutoTokenizer

    bare = tiny_decoder("llama", chat_template=False)
    missing = cli("--yard", tmp_path, "finetune", "--checkpoint", bare, "--data", chat_topics,
                  "--tokenizer", tmp_path / "missing", *QUICK)  # fmt: skip
    assert_user_error(
        missing, f"--tokenizer {tmp_path / 'missing'}: ", "Give a folder holding tokenizer files"
    )
    assert not yard_artifacts(tmp_path)

    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder("llama"))
    tokenizer.add_tokens(["<beyond-the-embeddings>"])
    tokenizer.save_pretrained(tmp_path / "bigger")
    bigger = cli("--yard", tmp_path, "finetune", "--checkpoint", bare, "--data", chat_topics,
                 "--tokenizer", tmp_path / "bigger", *QUICK)  # fmt: skip
    assert_user_error(bigger, f"tokens, but the model embeds only {len(tokenizer) - 1}")
    assert not yard_artifacts(tmp_path)

    tokenizer = AutoTokenizer.from_pretrained(tiny_decoder("llama"))
    tokenizer.chat_template = tokenizer.chat_template.replace(" : ", " says ").replace(
        "assistant :", "assistant says"
    )
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    result = cli("--yard", tmp_path, "finetune", "--checkpoint", bare, "--data", chat_topics,
                 "--tokenizer", tmp_path / "tokenizer", *QUICK)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip())
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["config"]["tokenizer"] == str((tmp_path / "tokenizer").resolve())

    # eval of the run formats prompts with the tokenizer saved in it
    scored = tmp_path / "run-eval"
    args = ("--data", chat_topics, "--split", "test", "--max-new-tokens", "2", "--output-dir", scored, "-q")
    assert cli("--yard", tmp_path, "eval", "--checkpoint", run / "best", *args).exit_code == 0
    prediction = json.loads((scored / "chat_topics_test" / "predictions.jsonl").read_text().splitlines()[0])
    assert prediction["prompt"].endswith("assistant says")
