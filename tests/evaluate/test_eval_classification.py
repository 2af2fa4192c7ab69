"""Classification eval of tiny real models: files, columns, manifest and index updates, errors."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file
from sklearn.metrics import accuracy_score

from tuneyard.errors import DataError, EvaluationError
from tuneyard.evaluate.model_eval import evaluate_model
from tuneyard.task_types.data_loading import load_task_data
from tuneyard.task_types.sequence_classification.metrics import classification_metrics
from tuneyard.yard import Yard, read_manifest

EXPECTED_FILES = {
    "summary_metrics.csv",
    "per_class_metrics.csv",
    "predictions.csv",
    "confusion_matrix.png",
    "metrics.json",
}


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_eval_in_yard_writes_files_next_to_the_run_and_updates_manifest_and_index(
    yard: Yard, run_in_yard: Callable[..., Path], data_folder: Callable[..., Path]
) -> None:
    run = run_in_yard("bert")
    data = load_task_data(data_dir=data_folder(("neg", "pos"), rows=24))
    outcome = evaluate_model(run / "best", data, yard, split="validation", batch_size=5)

    assert outcome.folder == run / "evaluation_results" / "toy_validation"
    assert {p.name for p in outcome.folder.iterdir()} == EXPECTED_FILES
    assert not [p for p in (run / "evaluation_results").iterdir() if p.name.startswith(".")]

    predictions = read_csv(outcome.folder / "predictions.csv")
    assert list(predictions[0]) == ["id", "text", "gold", "predicted", "correct", "prob_neg", "prob_pos"]
    assert [row["id"] for row in predictions] == [f"ex{i}" for i in range(24)]  # data order, not batch order
    assert all(abs(float(r["prob_neg"]) + float(r["prob_pos"]) - 1) < 1e-4 for r in predictions)
    gold = [0 if row["gold"] == "neg" else 1 for row in predictions]
    predicted = [0 if row["predicted"] == "neg" else 1 for row in predictions]
    assert all((row["predicted"] == "pos") == (float(row["prob_pos"]) > 0.5) for row in predictions)

    summary = {row["metric"]: float(row["value"]) for row in read_csv(outcome.folder / "summary_metrics.csv")}
    recomputed = classification_metrics(gold, predicted, data.spec)
    for name, value in recomputed.items():
        assert summary[name] == pytest.approx(value), name
    assert summary["samples"] == 24 and summary["samples_per_second"] > 0 and summary["peak_memory_mb"] > 0

    per_class = read_csv(outcome.folder / "per_class_metrics.csv")
    assert [row["label"] for row in per_class] == ["neg", "pos"]
    assert sum(int(row["support"]) for row in per_class) == 24

    document = json.loads((outcome.folder / "metrics.json").read_text())
    assert document["task"] == "toy" and document["split"] == "validation"
    assert document["metrics"]["accuracy"] == pytest.approx(recomputed["accuracy"])
    assert document["throughput"]["batch_size"] == 5

    manifest = read_manifest(run)
    assert manifest.metrics["toy"]["accuracy"] == pytest.approx(recomputed["accuracy"])
    assert "evaluation_results/toy_validation/predictions.csv" in {f.path for f in manifest.files}
    rows = yard.index.connection.execute(
        "SELECT a.path, m.value FROM metrics m JOIN artifacts a ON a.id = m.artifact_id "
        "WHERE m.key = 'toy.accuracy'"
    ).fetchall()
    assert rows == [(yard.relative(run), pytest.approx(recomputed["accuracy"]))]


def test_second_eval_of_the_same_cell_never_overwrites_the_first(
    yard: Yard, run_in_yard: Callable[..., Path], data_folder: Callable[..., Path]
) -> None:
    run = run_in_yard("bert")
    data = load_task_data(data_dir=data_folder(rows=8))
    first = evaluate_model(run, data, yard, split="test")
    second = evaluate_model(run, data, yard, split="test")
    assert first.folder.name == "toy_test" and second.folder.name == "toy_test-2"
    assert (first.folder / "predictions.csv").is_file() and (second.folder / "predictions.csv").is_file()
    assert first.metrics_key == "toy_test"
    assert read_manifest(run).metrics["toy_test"]["accuracy"] == pytest.approx(
        second.result.metrics["accuracy"]
    )


def test_non_best_subfolder_gets_a_prefixed_folder_and_key(
    yard: Yard, run_in_yard: Callable[..., Path], data_folder: Callable[..., Path]
) -> None:
    run = run_in_yard("bert", subfolder="last")
    outcome = evaluate_model(run, load_task_data(data_dir=data_folder(rows=6)), yard)
    assert outcome.folder == run / "evaluation_results" / "last_toy_validation"
    assert "last_toy" in read_manifest(run).metrics and "toy" not in read_manifest(run).metrics


def test_model_outside_the_yard_needs_output_dir_and_writes_only_there(
    tmp_path: Path, yard: Yard, tiny_model: Callable[..., Path], data_folder: Callable[..., Path]
) -> None:
    model = tmp_path / "elsewhere" / "model"
    shutil.copytree(tiny_model("roberta"), model)
    data = load_task_data(data_dir=data_folder(rows=6))
    with pytest.raises(EvaluationError, match="outside the yard") as error:
        evaluate_model(model, data, yard)
    assert "--output-dir" in (error.value.hint or "")

    before = sorted(p for p in tmp_path.rglob("*") if "out" not in p.parts)
    outcome = evaluate_model(model, data, yard, output_dir=tmp_path / "out")
    assert outcome.folder == tmp_path / "out" / "toy_validation" and outcome.artifact is None
    assert {p.name for p in outcome.folder.iterdir()} == EXPECTED_FILES
    assert sorted(p for p in tmp_path.rglob("*") if "out" not in p.parts) == before
    assert yard.index.count() == 0


@pytest.mark.parametrize("arch", ["modernbert", "gpt2", "llama"])
def test_every_family_evaluates_with_three_classes(
    arch: str, tmp_path: Path, yard: Yard, tiny_model: Callable[..., Path], data_folder: Callable[..., Path]
) -> None:
    data = load_task_data(data_dir=data_folder(("a", "b", "c"), rows=9))
    outcome = evaluate_model(
        tiny_model(arch, num_labels=3), data, yard, output_dir=tmp_path / "out", batch_size=4
    )
    assert outcome.result.probabilities.shape == (9, 3)  # type: ignore[union-attr]
    assert np.allclose(outcome.result.probabilities.sum(axis=1), 1.0, atol=1e-5)  # type: ignore[union-attr]


def test_padding_and_batch_size_do_not_change_predictions(
    tmp_path: Path, yard: Yard, tiny_model: Callable[..., Path], data_folder: Callable[..., Path]
) -> None:
    data = load_task_data(data_dir=data_folder(rows=12))
    model = tiny_model("bert")
    one = evaluate_model(model, data, yard, output_dir=tmp_path / "a", batch_size=1)
    many = evaluate_model(model, data, yard, output_dir=tmp_path / "b", batch_size=7)
    assert np.allclose(one.result.probabilities, many.result.probabilities, atol=1e-5)  # type: ignore[arg-type]


def test_label_count_mismatch_is_a_clear_error(
    tmp_path: Path, yard: Yard, tiny_model: Callable[..., Path], data_folder: Callable[..., Path]
) -> None:
    data = load_task_data(data_dir=data_folder(("a", "b", "c"), rows=6))
    with pytest.raises(EvaluationError, match="model has 2 classes but the data of 'toy' has 3: a, b, c"):
        evaluate_model(tiny_model("bert"), data, yard, output_dir=tmp_path / "out")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_named_label_set_mismatch_is_a_clear_error(
    tmp_path: Path, yard: Yard, tiny_model: Callable[..., Path], data_folder: Callable[..., Path]
) -> None:
    model = tmp_path / "named"
    shutil.copytree(tiny_model("bert"), model)
    config = json.loads((model / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "cat", "1": "neg"}, {"cat": 0, "neg": 1}
    (model / "config.json").write_text(json.dumps(config))
    data = load_task_data(data_dir=data_folder(("neg", "pos"), rows=6))
    with pytest.raises(
        EvaluationError, match="data labels not in the model: pos; model labels not in the data: cat"
    ):
        evaluate_model(model, data, yard, output_dir=tmp_path / "out")


def test_named_labels_in_another_order_are_matched_by_name(
    tmp_path: Path, yard: Yard, tiny_model: Callable[..., Path], data_folder: Callable[..., Path]
) -> None:
    data = load_task_data(data_dir=data_folder(("neg", "pos"), rows=10))
    plain = evaluate_model(tiny_model("bert"), data, yard, output_dir=tmp_path / "plain")
    model = tmp_path / "swapped"
    shutil.copytree(tiny_model("bert"), model)
    config = json.loads((model / "config.json").read_text())
    config["id2label"], config["label2id"] = {"0": "pos", "1": "neg"}, {"pos": 0, "neg": 1}
    (model / "config.json").write_text(json.dumps(config))
    swapped = evaluate_model(model, data, yard, output_dir=tmp_path / "swapped-out")
    # column 0 of the model now means "pos": the data's column order is restored by name
    assert np.allclose(swapped.result.probabilities[:, ::-1], plain.result.probabilities, atol=1e-5)  # type: ignore[index]


def test_missing_split_is_a_clear_error(
    tmp_path: Path, yard: Yard, tiny_model: Callable[..., Path], data_folder: Callable[..., Path]
) -> None:
    folder = data_folder(rows=6)
    (folder / "test.csv").unlink()
    with pytest.raises(DataError, match="has no 'test' split"):
        evaluate_model(
            tiny_model("bert"),
            load_task_data(data_dir=folder),
            yard,
            split="test",
            output_dir=tmp_path / "out",
        )


def test_regression_task_scores_pearson_and_writes_no_confusion_matrix(
    tmp_path: Path, tiny_model: Callable[..., Path]
) -> None:
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tuneyard.data.tasks import TaskSpec
    from tuneyard.task_types.sequence_classification.eval_files import write_eval_files
    from tuneyard.task_types.sequence_classification.evaluation import evaluate_classifier

    spec = TaskSpec(
        name="similarity", problem="regression", main_metric="pearson", extra_metrics=("spearmanr",)
    )
    texts = [
        "a cat",
        "a dog sat on the mat",
        "rain",
        "the quick brown fox jumps",
        "blue sky",
        "one two three four",
    ]
    dataset = Dataset.from_dict(
        {
            "text": texts,
            "text_pair": texts[::-1],
            "label": [0.5, 2.0, 4.5, 1.0, 3.0, 5.0],
            "id": list(range(6)),
        }
    )
    model = AutoModelForSequenceClassification.from_pretrained(tiny_model("bert", num_labels=1))
    tokenizer = AutoTokenizer.from_pretrained(tiny_model("bert", num_labels=1))
    result = evaluate_classifier(model, tokenizer, dataset, spec, "validation", batch_size=4)
    assert set(result.metrics) == {"pearson", "spearmanr", "mse", "mae"}
    assert result.probabilities is None and result.per_class == []
    written = write_eval_files(result, tmp_path, "tiny")
    assert sorted(written) == ["metrics.json", "predictions.csv", "summary_metrics.csv"]
    rows = read_csv(tmp_path / "predictions.csv")
    assert list(rows[0]) == ["id", "text", "text_pair", "gold", "predicted"]
    assert [float(r["gold"]) for r in rows] == [0.5, 2.0, 4.5, 1.0, 3.0, 5.0]


def test_regression_data_on_a_classifier_is_a_clear_error(tiny_model: Callable[..., Path]) -> None:
    from tuneyard.task_types.sequence_classification.evaluation import label_columns
    from tuneyard.task_types.sequence_classification.glue import GLUE_TASKS

    with pytest.raises(
        EvaluationError, match="'stsb' is a regression task .one output., but the model has 2"
    ):
        label_columns({0: "LABEL_0", 1: "LABEL_1"}, GLUE_TASKS["stsb"])


def test_lora_adapter_and_compressed_model_evaluate_like_plain_ones(
    tmp_path: Path,
    yard: Yard,
    tiny_model: Callable[..., Path],
    data_folder: Callable[..., Path],
    run_cli: Callable[[list[str]], int],
) -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    base = tmp_path / "base"
    shutil.copytree(tiny_model("bert"), base)
    peft_model = get_peft_model(
        AutoModelForSequenceClassification.from_pretrained(base),
        LoraConfig(task_type="SEQ_CLS", r=4, target_modules=["query", "value"]),
    )
    torch.manual_seed(0)
    with torch.no_grad():  # PEFT starts B at 0 (a no-op): make the adapter change the model
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=1.0)
    peft_model.eval()
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    compressed = tmp_path / "compressed"
    assert (
        run_cli(
            [
                "--yard",
                str(tmp_path),
                "compress",
                "--model",
                str(base),
                "--method",
                "standard",
                "--rank",
                "8",
                "--output-dir",
                str(compressed),
            ]
        )
        == 0
    )

    data = load_task_data(data_dir=data_folder(rows=8))
    plain = evaluate_model(base, data, yard, output_dir=tmp_path / "out-plain")
    lora = evaluate_model(adapter, data, yard, output_dir=tmp_path / "out-lora")
    low_rank = evaluate_model(compressed, data, yard, output_dir=tmp_path / "out-compressed")
    # the adapter's own forward, one text at a time (no padding), in data order
    tokenizer = AutoTokenizer.from_pretrained(base)
    texts = [row["text"] for row in read_csv(lora.folder / "predictions.csv")]
    with torch.no_grad():
        expected = torch.cat([peft_model(**tokenizer(text, return_tensors="pt")).logits for text in texts])
    expected_probabilities = expected.softmax(-1).numpy()
    assert np.allclose(lora.result.probabilities, expected_probabilities, atol=1e-5)  # type: ignore[arg-type]
    written = [
        [float(row["prob_neg"]), float(row["prob_pos"])] for row in read_csv(lora.folder / "predictions.csv")
    ]
    assert np.allclose(written, expected_probabilities, atol=1e-4)
    # and not those of the base: an ignored adapter fails here. The tiny random head keeps every
    # probability near 0.5, so the adapter moves them by ~1e-3: a hundred times the tolerance above.
    difference = np.abs(lora.result.probabilities - plain.result.probabilities).max()  # type: ignore[operator]
    assert difference > 1e-4, difference
    assert {p.name for p in low_rank.folder.iterdir()} == EXPECTED_FILES
    # the compressed model's answers are those of the base with each factored layer's weight
    # replaced by left @ right, rebuilt here from the saved factors with transformers alone
    saved = load_file(str(compressed / "model.safetensors"))
    factored = [key.removesuffix(".left") for key in saved if key.endswith(".left")]
    assert factored, "standard rank 8 factors the layers"
    state = {key: value for key, value in saved.items() if not key.endswith((".left", ".right"))}
    state |= {f"{name}.weight": saved[f"{name}.left"] @ saved[f"{name}.right"] for name in factored}
    rebuilt = AutoModelForSequenceClassification.from_pretrained(base).eval()
    rebuilt.load_state_dict(state)
    with torch.no_grad():
        logits = torch.cat([rebuilt(**tokenizer(text, return_tensors="pt")).logits for text in texts])
    rebuilt_probabilities = logits.softmax(-1).numpy()
    rows = read_csv(low_rank.folder / "predictions.csv")
    written = [[float(row["prob_neg"]), float(row["prob_pos"])] for row in rows]
    # Near 0.5 again: the base model's probabilities are ~7e-5 away and a rank too few ~1e-5, while
    # these agree to the 6 decimals the file holds, so the tolerance is tight.
    assert np.allclose(written, rebuilt_probabilities, rtol=0, atol=2e-6)
    assert [row["predicted"] for row in rows] == [("neg", "pos")[i] for i in logits.argmax(-1).tolist()]
    accuracy = json.loads((low_rank.folder / "metrics.json").read_text())["metrics"]["accuracy"]
    gold, predicted = [row["gold"] for row in rows], [row["predicted"] for row in rows]
    assert accuracy == pytest.approx(accuracy_score(gold, predicted))


def test_eval_truncates_at_the_length_the_run_was_trained_with(
    yard: Yard, run_in_yard: Callable[..., Path], data_folder: Callable[..., Path]
) -> None:
    from tuneyard.yard import write_manifest

    run = run_in_yard("bert")
    manifest = read_manifest(run)
    manifest.config = {"max_length": 8}
    write_manifest(run, manifest)
    data = load_task_data(data_dir=data_folder(rows=6))
    trained = evaluate_model(run, data, yard)
    assert json.loads((trained.folder / "metrics.json").read_text())["throughput"]["max_length"] == 8
    explicit = evaluate_model(run, data, yard, max_length=64)
    assert explicit.result.throughput.max_length == 64
