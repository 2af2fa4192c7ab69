"""Generated answers for chat prompts: tuneyard generate, and tuneyard eval grading them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def decoder_run(tiny_decoder, chat_topics, tmp_path_factory) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """A tiny LLaMA fine-tuned on the chat topics (one validation batch): ``(yard, run)``."""
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import finetune
    from tuneyard.yard.root import Yard

    yard = tmp_path_factory.mktemp("yard")
    options = FinetuneOptions(
        checkpoint=str(tiny_decoder("llama")),
        data=str(chat_topics),
        epochs=3,
        batch_size=16,
        learning_rate=3e-3,
        max_length=64,
    )
    return yard, finetune(options, Yard.open(yard)).path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_generate_files_answers_in_the_split_order_and_repeats_with_a_seed(
    cli, decoder_run, chat_topics
) -> None:
    yard, run = decoder_run
    flags = ("--yard", yard, "generate", "--checkpoint", run, "--data", chat_topics, "--split", "test")
    first = cli(*flags, "--max-new-tokens", "4", "--do-sample", "--temperature", "1.5", "--seed", "3")
    assert first.exit_code == 0, first.stderr
    folder = Path(first.stdout.strip())
    assert folder == run / "generations" / "chat_topics_test"
    rows = read_jsonl(folder / "predictions.jsonl")
    expected_ids = [json.loads(line)["id"] for line in (chat_topics / "test.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == expected_ids
    assert set(rows[0]) == {"id", "prompt", "request", "prediction", "reference", "tokens", "seconds"}
    assert all(0 < row["tokens"] <= 4 and row["prompt"].endswith("assistant :") for row in rows)
    asked = [json.loads(line)["messages"][:2] for line in (chat_topics / "test.jsonl").open()]
    assert [row["request"] for row in rows] == [  # the messages as written, no template around them
        f"system: {system['content']}\n\nuser: {user['content']}" for system, user in asked
    ]
    assert not any("<" in row["request"] for row in rows)
    settings = json.loads((folder / "generation.json").read_text())
    assert settings["do_sample"] is True and settings["seed"] == 3 and settings["max_new_tokens"] == 4

    again = cli(*flags, "--max-new-tokens", "4", "--do-sample", "--temperature", "1.5", "--seed", "3")
    assert again.exit_code == 0, again.stderr
    assert Path(again.stdout.strip()).name == "chat_topics_test-2"  # never overwritten
    repeated = read_jsonl(Path(again.stdout.strip()) / "predictions.jsonl")
    assert [row["prediction"] for row in repeated] == [row["prediction"] for row in rows]

    other_seed = cli(*flags, "--max-new-tokens", "4", "--do-sample", "--temperature", "1.5", "--seed", "4")
    changed = read_jsonl(Path(other_seed.stdout.strip()) / "predictions.jsonl")
    assert [row["prediction"] for row in changed] != [row["prediction"] for row in rows]


def test_greedy_generation_matches_a_plain_generate_call(cli, decoder_run, chat_topics) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    yard, run = decoder_run
    result = cli(
        "--yard",
        yard,
        "generate",
        "--checkpoint",
        run / "last",
        "--data",
        chat_topics,
        "--max-new-tokens",
        "5",
    )
    assert result.exit_code == 0, result.stderr
    rows = read_jsonl(Path(result.stdout.strip()) / "predictions.jsonl")
    model = AutoModelForCausalLM.from_pretrained(run / "last").eval()
    tokenizer = AutoTokenizer.from_pretrained(run / "last")
    for row in rows[:3]:  # one prompt at a time, no padding: the reference decoding
        ids = tokenizer(
            row["prompt"], add_special_tokens=False, return_token_type_ids=False, return_tensors="pt"
        )
        with torch.inference_mode():
            output = model.generate(
                **ids, max_new_tokens=5, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        plain = tokenizer.decode(output[0, ids["input_ids"].shape[1] :], skip_special_tokens=True).strip()
        assert row["prediction"] == plain


def test_eval_of_a_decoder_grades_its_answers_and_scores_the_references(
    cli, decoder_run, chat_topics
) -> None:
    yard, run = decoder_run
    result = cli(
        "--yard",
        yard,
        "eval",
        "--checkpoint",
        run,
        "--data",
        chat_topics,
        "--split",
        "test",
        "--grader",
        "choice",
        "--choices",
        "sports,cooking",
        "--max-new-tokens",
        "3",
    )
    assert result.exit_code == 0, result.stderr
    folder = run / "evaluation_results" / "chat_topics_test"
    predictions = read_jsonl(folder / "predictions.jsonl")
    samples = read_jsonl(folder / "grader_logs" / "test_choice" / "samples.jsonl")
    assert [s["id"] for s in samples] == [p["id"] for p in predictions]
    assert [s["score"] for s in samples] == [p["score"] for p in predictions]
    metrics = json.loads((run / "manifest.json").read_text())["metrics"]["chat_topics_test"]
    assert metrics["choice"] == pytest.approx(sum(s["score"] for s in samples) / len(samples))
    assert metrics["perplexity"] > 1 and metrics["tokens_per_second"] > 0
    # the references' perplexity on validation is the one training logged for best/ (one eval batch)
    trained = json.loads((run / "manifest.json").read_text())["metrics"]["chat_topics"]["perplexity"]
    validation = cli(
        "--yard", yard, "eval", "--checkpoint", run, "--data", chat_topics, "--max-new-tokens", "1"
    )
    assert validation.exit_code == 0, validation.stderr
    scored = json.loads((run / "manifest.json").read_text())["metrics"]["chat_topics"]["perplexity"]
    assert scored == pytest.approx(trained, rel=1e-4)


def test_generate_refuses_classification_data(cli, decoder_run, tmp_path) -> None:
    yard, run = decoder_run
    folder = tmp_path / "labels"
    folder.mkdir()
    (folder / "test.csv").write_text("text,label\nhello,a\nbye,b\n")
    result = cli("--yard", yard, "generate", "--checkpoint", run, "--data", folder, "--split", "test")
    assert result.exit_code == 2 and "generate answers chat prompts" in result.stderr


def test_eval_grid_grades_generative_cells_of_a_chosen_checkpoint(cli, decoder_run, chat_topics) -> None:
    yard, run = decoder_run
    result = cli(
        "--yard",
        yard,
        "eval-grid",
        "--models",
        run,
        "--tasks",
        chat_topics,
        "--split",
        "test",
        "--nb-eval-samples",
        "5",
        "--checkpoint-to-eval",
        "last",
        "--experiment",
        "chat",
        "--set",
        "answers.grader=contains",
        "--set",
        "answers.max_new_tokens=3",
    )
    assert result.exit_code == 0, result.stderr
    document = json.loads((yard / "experiments" / "chat" / "eval_grid_results.json").read_text())
    (cell,) = document["cells"]
    assert cell["status"] == "complete" and cell["main_metric"] == "contains"
    assert cell["model"].endswith("/last") and set(cell["metrics"]) >= {"contains", "perplexity"}
    predictions = read_jsonl(yard / cell["results"] / "predictions.jsonl")
    assert len(predictions) == 5 and all(row["tokens"] <= 3 for row in predictions)

    missing = cli(
        "--yard",
        yard,
        "eval-grid",
        "--models",
        run,
        "--tasks",
        chat_topics,
        "--checkpoint-to-eval",
        "checkpoint-9-99",
    )
    assert missing.exit_code == 2 and "has no 'checkpoint-9-99' folder to evaluate" in missing.stderr
