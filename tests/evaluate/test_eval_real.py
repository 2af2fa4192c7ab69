"""Slow checks on the real MiniLM and the real Debian topics data (`pytest -m slow`)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tuneyard.yard import Yard

DEBIAN_TOPICS = Path(__file__).resolve().parents[2] / "data" / "debian_topics"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm_classifier(minilm: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real MiniLM encoder with a (seeded, untrained) 6-class head, saved as a folder."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("minilm-topics")
    AutoModelForSequenceClassification.from_pretrained(minilm, num_labels=6).save_pretrained(folder)
    AutoTokenizer.from_pretrained(minilm).save_pretrained(folder)
    return folder


def test_real_minilm_on_debian_topics_test_split(
    tmp_path: Path, yard: Yard, minilm_classifier: Path, run_cli: Callable[[list[str]], int]
) -> None:
    out = tmp_path / "out"
    assert (
        run_cli(
            [
                "--yard",
                str(yard.root),
                "eval",
                "--checkpoint",
                str(minilm_classifier),
                "--data",
                str(DEBIAN_TOPICS),
                "--split",
                "test",
                "--output-dir",
                str(out),
                "--quiet",
            ]
        )
        == 0
    )
    folder = out / "debian_topics_test"
    with (DEBIAN_TOPICS / "test.csv").open(newline="") as handle:
        source = list(csv.DictReader(handle))
    with (folder / "predictions.csv").open(newline="") as handle:
        predictions = list(csv.DictReader(handle))
    assert [row["id"] for row in predictions] == [row["id"] for row in source]
    assert [row["gold"] for row in predictions] == [row["label"] for row in source]
    document = json.loads((folder / "metrics.json").read_text())
    assert sorted(document["label_names"]) == sorted({row["label"] for row in source})
    assert sum(row["support"] for row in document["per_class"]) == len(source)
    assert document["throughput"]["samples_per_second"] > 0

    # The scores are those of the predictions a user reads in predictions.csv (recomputed with sklearn).
    from sklearn.metrics import f1_score, recall_score

    names = document["label_names"]
    gold = [row["gold"] for row in predictions]
    predicted = [row["predicted"] for row in predictions]
    hits = [g == p for g, p in zip(gold, predicted, strict=True)]
    assert [row["correct"] == "True" for row in predictions] == hits
    for row in predictions:  # the predicted label is the most probable one
        assert row["predicted"] == max(names, key=lambda name: float(row[f"prob_{name}"]))
    assert all(abs(sum(float(row[f"prob_{name}"]) for name in names) - 1) < 1e-4 for row in predictions)
    expected = {
        "accuracy": sum(hits) / len(source),
        "f1_macro": f1_score(gold, predicted, labels=names, average="macro", zero_division=0),
        "recall_weighted": recall_score(gold, predicted, labels=names, average="weighted", zero_division=0),
    }
    for name, value in expected.items():
        assert document["metrics"][name] == pytest.approx(value, abs=1e-6), name
    with (folder / "summary_metrics.csv").open(newline="") as handle:
        summary = {row["metric"]: float(row["value"]) for row in csv.DictReader(handle)}
    assert {name: summary[name] for name in document["metrics"]} == pytest.approx(document["metrics"])
    assert summary["samples"] == len(source)
    assert {row["label"]: row["support"] for row in document["per_class"]} == {
        name: gold.count(name) for name in names
    }


def test_real_minilm_weights_report(tmp_path: Path, minilm: Path) -> None:
    from matplotlib.image import imread

    from tuneyard.report.build import build_report

    report = build_report(minilm, output_dir=tmp_path / "report")
    assert [plot.name for plot in report.plots] == ["model_weights.png"]
    assert imread(report.plots[0])[..., :3].std() > 0.03
