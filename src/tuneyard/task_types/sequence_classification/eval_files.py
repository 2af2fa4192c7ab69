"""The result of one classification eval, and its files written into a folder.

``summary_metrics.csv`` (metric,value), ``per_class_metrics.csv``, ``predictions.csv``
(one row per example with the probability of every class), ``confusion_matrix.png``
and ``metrics.json`` (all of the above but the predictions, plus throughput and
memory) — the same names users already script against.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuneyard.components.confusion import confusion_counts, plot_confusion_matrix
from tuneyard.components.throughput import json_number
from tuneyard.yard.manifest import utc_now

if TYPE_CHECKING:
    from tuneyard.components.throughput import Throughput
    from tuneyard.data.tasks import TaskSpec

SUMMARY_FILE = "summary_metrics.csv"
PER_CLASS_FILE = "per_class_metrics.csv"
PREDICTIONS_FILE = "predictions.csv"
CONFUSION_FILE = "confusion_matrix.png"
METRICS_FILE = "metrics.json"


@dataclass
class ClassificationResult:
    """Everything one eval produced: scores, per-class rows, per-example predictions."""

    spec: TaskSpec
    split: str
    metrics: dict[str, float]
    per_class: list[dict[str, Any]]
    ids: list[Any]
    texts: list[str]
    text_pairs: list[str] | None
    gold: np.ndarray
    predicted: np.ndarray
    probabilities: np.ndarray | None  # (n, num_labels); None for regression
    throughput: Throughput

    @property
    def main_metric(self) -> str:
        """The task's headline metric."""
        return self.spec.main_metric

    def write_files(self, folder: Path, model: str) -> list[str]:
        """The summary and per-class CSVs, ``predictions.csv``, the confusion matrix, ``metrics.json``."""
        return write_eval_files(self, folder, model)


def summary_rows(result: ClassificationResult) -> list[tuple[str, float]]:
    """``(metric, value)`` rows: scores first, then throughput and memory."""
    return [*result.metrics.items(), *result.throughput.numbers().items()]


def metrics_document(result: ClassificationResult, model: str) -> dict[str, Any]:
    """The content of ``metrics.json``."""
    throughput = result.throughput
    return {
        "model": model,
        "task": result.spec.name,
        "split": result.split,
        "problem": result.spec.problem,
        "main_metric": result.spec.main_metric,
        "label_names": list(result.spec.label_names),
        "metrics": {name: json_number(value) for name, value in result.metrics.items()},
        "per_class": result.per_class,
        "throughput": {
            **throughput.numbers(),
            "batch_size": throughput.batch_size,
            "max_length": throughput.max_length,
            "device": throughput.device,
            "memory_measure": throughput.memory_measure,
        },
        "created": utc_now(),
    }


def _write_csv(target: Path, header: list[str], rows: list[list[Any]]) -> None:
    with target.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def prediction_rows(result: ClassificationResult) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of ``predictions.csv`` (label names, not ids, for classes)."""
    spec = result.spec
    header = ["id", "text"] + (["text_pair"] if result.text_pairs is not None else []) + ["gold", "predicted"]
    names = spec.label_names
    if spec.problem == "classification":
        header += ["correct"] + [f"prob_{name}" for name in names]
    rows = []
    for i, example_id in enumerate(result.ids):
        row: list[Any] = [example_id, result.texts[i]]
        if result.text_pairs is not None:
            row.append(result.text_pairs[i])
        if spec.problem == "classification":
            gold, predicted = int(result.gold[i]), int(result.predicted[i])
            row += [names[gold], names[predicted], gold == predicted]
            row += [f"{p:.6f}" for p in result.probabilities[i]]  # type: ignore[index]
        else:
            row += [float(result.gold[i]), f"{float(result.predicted[i]):.6f}"]
        rows.append(row)
    return header, rows


def write_eval_files(result: ClassificationResult, folder: Path, model: str) -> list[str]:
    """Write every eval file into ``folder``; return the names written."""
    _write_csv(folder / SUMMARY_FILE, ["metric", "value"], [[k, v] for k, v in summary_rows(result)])
    written = [SUMMARY_FILE]
    if result.spec.problem == "classification":
        columns = ["label", "label_id", "precision", "recall", "f1", "support"]
        _write_csv(folder / PER_CLASS_FILE, columns, [[row[c] for c in columns] for row in result.per_class])
        counts = confusion_counts(result.gold, result.predicted, result.spec.num_labels)
        title = f"{Path(model).name} on {result.spec.name} ({result.split}, n={len(result.ids)})"
        plot_confusion_matrix(counts, result.spec.label_names, folder / CONFUSION_FILE, title)
        written += [PER_CLASS_FILE, CONFUSION_FILE]
    header, rows = prediction_rows(result)
    _write_csv(folder / PREDICTIONS_FILE, header, rows)
    (folder / METRICS_FILE).write_text(json.dumps(metrics_document(result, model), indent=2) + "\n")
    return [*written, PREDICTIONS_FILE, METRICS_FILE]
