"""Compressed decoders fine-tuned with ``--strategy lowrank``, and plain text as language-modelling rows."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from safetensors.torch import load_file
from test_errors import assert_user_error, yard_artifacts

QUICK = ("--epochs", "1", "--batch-size", "8", "--learning-rate", "1e-2", "--max-length", "64", "-q")


@pytest.fixture(scope="module")
def compressed_decoders(tiny_decoder, chat_topics, tmp_path_factory):  # type: ignore[no-untyped-def]
    """``compressed_decoders(arch)``: a whitened tiny decoder (ratio 0.6) with its manifest."""
    from tuneyard.compress.compressor import compress_model
    from tuneyard.compress.options import CompressOptions
    from tuneyard.yard.root import Yard

    yard, made = Yard.open(tmp_path_factory.mktemp("yard")), {}

    def make(arch: str) -> Path:
        if arch not in made:
            options = CompressOptions(
                model=str(tiny_decoder(arch)),
                method="whiten",
                ratio=0.6,
                data=str(chat_topics),
                calib_samples=16,
            )
            made[arch] = compress_model(options, yard).path
        return made[arch]

    return make


@pytest.fixture
def compressed_decoder(compressed_decoders):  # type: ignore[no-untyped-def]
    return compressed_decoders("llama")


def tied_as_embedding(weights: dict) -> dict:  # type: ignore[type-arg]
    """GPT-2's output layer is its embedding: saved under either name, compared under one."""
    if "lm_head.weight" in weights and "transformer.wte.weight" not in weights:
        weights["transformer.wte.weight"] = weights.pop("lm_head.weight")
    return weights


def read_jsonl(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in path.read_text().splitlines()]


def plain(answer: str) -> str:
    """An answer as the exact grader compares it (written here, apart from the grader)."""
    return " ".join(answer.split()).strip("\"'`“”‘’ ").lower().rstrip(".!?").strip("\"'`“”‘’ ")


LAYERS = {"llama": 14, "gpt2": 8}  # 7 projections per layer; GPT-2: c_attn, two c_proj, c_fc
CLASSES = {"llama": "LlamaForCausalLM", "gpt2": "GPT2LMHeadModel"}


@pytest.mark.parametrize(("arch", "data_kind"), [("llama", "chat"), ("llama", "text"), ("gpt2", "chat")])
def test_lowrank_trains_a_compressed_decoders_factors_only(
    cli, compressed_decoders, chat_topics, topics, tmp_path, arch, data_kind
) -> None:
    """Chat rows or plain text: the factors learn; embeddings, norms and the tied output layer stay."""
    import tuneyard
    from tuneyard.models.lowrank import LowRankLinear

    compressed_decoder = compressed_decoders(arch)
    data = ("--data", chat_topics) if data_kind == "chat" else ("--data", topics, "--task-type", "causal_lm")
    result = cli("--yard", tmp_path, "finetune", "--checkpoint", compressed_decoder, *data, *QUICK)
    assert result.exit_code == 0, result.stderr
    assert "strategy lowrank" in result.stderr  # the default for a compressed checkpoint
    run = Path(result.stdout.strip())
    assert run == tmp_path / "models" / "finetuned" / arch / "whiten" / compressed_decoder.name

    before = tied_as_embedding(load_file(str(compressed_decoder / "model.safetensors")))
    after = tied_as_embedding(load_file(str(run / "last" / "model.safetensors")))
    assert set(before) == set(after)
    factors = {key for key in before if key.endswith((".left", ".right"))}
    assert len(factors) == 2 * LAYERS[arch]
    assert not [key for key in factors if before[key].equal(after[key])], "every factor trains"
    assert all(before[key].equal(after[key]) for key in set(after) - factors)

    best = tuneyard.load(run / "best")
    assert type(best).__name__ == CLASSES[arch]
    assert sum(isinstance(module, LowRankLinear) for module in best.modules()) == LAYERS[arch]
    info = json.loads((run / "best" / "compression_info.json").read_text())
    assert info["model_class"] == CLASSES[arch] and info["method"] == "whiten"


def test_a_recovered_decoder_answers_and_is_graded(cli, compressed_decoder, chat_topics, tmp_path) -> None:
    result = cli(
        "--yard", tmp_path, "finetune", "--checkpoint", compressed_decoder, "--data", chat_topics, *QUICK
    )
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip())
    result = cli(
        "--yard", tmp_path, "eval", "--checkpoint", run, "--data", chat_topics, "--split", "test", "-q"
    )
    assert result.exit_code == 0, result.stderr
    metrics = json.loads((run / "manifest.json").read_text())["metrics"]["chat_topics_test"]
    assert math.isfinite(metrics["perplexity"])
    rows = read_jsonl(run / "evaluation_results" / "chat_topics_test" / "predictions.jsonl")
    answers = [row["messages"][-1]["content"] for row in read_jsonl(chat_topics / "test.jsonl")]
    assert [row["reference"] for row in rows] == answers
    # the exact grade, recomputed from the saved answers: case, spaces, quotes and a final .!? aside
    matches = [float(plain(row["prediction"]) == plain(row["reference"])) for row in rows]
    assert [row["score"] for row in rows] == matches
    assert metrics["exact"] == pytest.approx(sum(matches) / len(matches))
    # A tiny model answers nothing right, so a grader that never matches would pass the above:
    # every other answer made its reference (as a person writes it) and graded again must match.
    for row in rows[::2]:
        row["prediction"] = f" {row['reference'].title()}. "
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(json.dumps(row) + "\n" for row in rows))
    grade = ("grade", "--predictions", edited, "--grader", "exact", "--format", "json")
    result = cli("--yard", tmp_path, *grade)
    assert result.exit_code == 0, result.stderr
    matches = [float(plain(row["prediction"]) == plain(row["reference"])) for row in rows]
    assert sum(matches) >= len(rows) / 2
    assert json.loads(result.stdout)["score"] == pytest.approx(sum(matches) / len(matches))


def test_plain_text_rows_learn_every_token(tiny_decoder, tmp_path) -> None:
    """TRL's language-modelling form: labels are the tokens themselves, the padding alone is -100."""
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import prepare_finetune
    from tuneyard.yard.root import Yard

    data = tmp_path / "text"
    data.mkdir()
    lines = ["text"] + [" ".join(["some words about the oven"] * (1 + index % 4)) for index in range(16)]
    (data / "train.csv").write_text("\n".join(lines) + "\n")
    options = FinetuneOptions(
        checkpoint=str(tiny_decoder("llama")), data=str(data), task_type="causal_lm", max_length=64
    )
    prepared = prepare_finetune(options, Yard.open(tmp_path))
    assert prepared.data.spec.problem == "language_modeling"
    trainer = prepared.trainer()
    batch = trainer.data_collator([trainer.train_dataset[index] for index in range(4)])
    real = batch["attention_mask"].bool()  # padding is what the mask leaves out
    assert (~real).any(), "rows of different lengths, so some padding"
    assert batch["labels"][real].equal(batch["input_ids"][real])
    assert (batch["labels"][~real] == -100).all()
    first = trainer.processing_class.decode(batch["input_ids"][0], skip_special_tokens=True)
    assert first == prepared.data.splits["train"]["text"][0]  # the row's own text, whole


def test_eval_of_plain_text_is_its_perplexity_alone(cli, tiny_decoder, topics, tmp_path) -> None:
    folder = tmp_path / "results"
    args = (
        "--data",
        topics,
        "--task-type",
        "causal_lm",
        "--split",
        "validation",
        "--output-dir",
        folder,
        "-q",
    )
    result = cli("--yard", tmp_path, "eval", "--checkpoint", tiny_decoder("llama"), *args)
    assert result.exit_code == 0, result.stderr
    folder = folder / "topics_validation"
    assert sorted(path.name for path in folder.iterdir()) == ["metrics.json"]
    metrics = json.loads((folder / "metrics.json").read_text())["metrics"]
    assert list(metrics) == ["perplexity"] and metrics["perplexity"] > 1
    assert "perplexity" in result.stdout


def test_generate_refuses_plain_text(tiny_decoder, topics, tmp_path) -> None:
    from tuneyard.data.options import DataOptions
    from tuneyard.errors import EvaluationError
    from tuneyard.evaluate.generate import generate
    from tuneyard.task_types.causal_lm.options import GenerationOptions
    from tuneyard.task_types.data_loading import load_data
    from tuneyard.yard.root import Yard

    data = load_data(DataOptions(data=str(topics), task_type="causal_lm"))
    with pytest.raises(EvaluationError, match="plain text, with no prompts to answer"):
        generate(tiny_decoder("llama"), data, Yard.open(tmp_path), GenerationOptions(), split="validation")


def test_plain_text_needs_an_end_of_sequence_token(cli, tiny_decoder, topics, tmp_path) -> None:
    import shutil

    from transformers import AutoTokenizer

    model = tmp_path / "lm"
    shutil.copytree(tiny_decoder("llama"), model)
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.eos_token = None
    tokenizer.save_pretrained(model)
    result = cli(
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        model,
        "--data",
        topics,
        "--task-type",
        "causal_lm",
        *QUICK,
    )
    assert_user_error(result, "no end-of-sequence token", "tokenizer.eos_token")
    assert not yard_artifacts(tmp_path)
