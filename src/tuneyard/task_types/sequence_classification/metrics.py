"""Task metrics, computed by scikit-learn / scipy, in one flat ``name -> float`` dict.

Every classification result carries the same general set (accuracy, macro / micro /
weighted F1, precision, recall, Matthews correlation) plus the task's own metric
(``TaskSpec.main_metric`` and ``extra_metrics``: Matthews for CoLA, binary F1 for
MRPC / QQP, Pearson / Spearman for STS-B), so results from different tasks share
column names and a task's headline number is always present under its own name.

The same functions back ``tuneyard eval`` and the HF Trainer's ``compute_metrics``
(:func:`trainer_metrics`), so training logs and eval reports agree.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from tuneyard.errors import EvaluationError

if TYPE_CHECKING:
    from tuneyard.data.tasks import TaskSpec

ArrayLike = Sequence[float] | np.ndarray

CLASSIFICATION_METRICS = (
    "accuracy",
    "f1_macro",
    "f1_micro",
    "f1_weighted",
    "precision_macro",
    "precision_weighted",
    "recall_macro",
    "recall_weighted",
    "matthews_correlation",
)
REGRESSION_METRICS = ("pearson", "spearmanr", "mse", "mae")


def _binary_f1(labels: np.ndarray, predictions: np.ndarray) -> float:
    """F1 of the positive class (id 1), GLUE's metric for MRPC and QQP."""
    from sklearn.metrics import f1_score

    return float(f1_score(labels, predictions, pos_label=1, average="binary", zero_division=0))


TASK_OWN_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {"f1": _binary_f1}


def _check_lengths(labels: np.ndarray, predictions: np.ndarray) -> None:
    if labels.shape[0] != predictions.shape[0]:
        raise EvaluationError(
            f"got {labels.shape[0]} labels but {predictions.shape[0]} predictions.",
            "Pass one prediction per labelled example.",
        )
    if labels.shape[0] == 0:
        raise EvaluationError("cannot compute metrics on an empty split.", "Choose a split with examples.")


def general_classification_metrics(
    labels: ArrayLike, predictions: ArrayLike, num_labels: int
) -> dict[str, float]:
    """Accuracy, F1 / precision / recall (macro, micro, weighted) and MCC over ``num_labels`` classes.

    Averages run over all ``num_labels`` classes, also those absent from this sample,
    so a class the model never predicts counts as 0 rather than vanishing.
    """
    from sklearn.metrics import matthews_corrcoef, precision_recall_fscore_support

    gold, pred = np.asarray(labels, dtype=int), np.asarray(predictions, dtype=int)
    _check_lengths(gold, pred)
    classes = list(range(num_labels))
    # One per-class pass, averaged here, rather than a scikit-learn call per average: the
    # Trainer computes these at every evaluation, where eight calls cost 19 ms on 24 rows.
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, pred, labels=classes, average=None, zero_division=0
    )
    _, _, f1_micro, _ = precision_recall_fscore_support(
        gold, pred, labels=classes, average="micro", zero_division=0
    )

    def weighted(values: np.ndarray) -> float:
        return float(np.average(values, weights=support)) if support.sum() else 0.0

    return {  # in the order training_log.csv and the eval files show them
        "accuracy": float(np.mean(gold == pred)),
        "f1_macro": float(np.mean(f1)),
        "f1_micro": float(f1_micro),
        "f1_weighted": weighted(f1),
        "precision_macro": float(np.mean(precision)),
        "recall_macro": float(np.mean(recall)),
        "precision_weighted": weighted(precision),
        "recall_weighted": weighted(recall),
        "matthews_correlation": float(matthews_corrcoef(gold, pred)),
    }


def regression_metrics(labels: ArrayLike, predictions: ArrayLike) -> dict[str, float]:
    """Pearson and Spearman correlation, mean squared and absolute error (STS-B style).

    A constant prediction has no defined correlation; it is reported as NaN, not 0,
    so it cannot be mistaken for a real result.
    """
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error

    gold, pred = np.asarray(labels, dtype=float), np.asarray(predictions, dtype=float).reshape(-1)
    _check_lengths(gold, pred)
    constant = np.ptp(pred) == 0 or np.ptp(gold) == 0 or len(gold) < 2
    return {
        "pearson": math.nan if constant else float(pearsonr(gold, pred)[0]),
        "spearmanr": math.nan if constant else float(spearmanr(gold, pred)[0]),
        "mse": float(mean_squared_error(gold, pred)),
        "mae": float(mean_absolute_error(gold, pred)),
    }


def classification_metrics(labels: ArrayLike, predictions: ArrayLike, spec: TaskSpec) -> dict[str, float]:
    """All metrics for ``spec``'s problem: the general set plus the task's own metric.

    ``predictions`` are class ids for classification tasks and scores for regression.
    """
    if spec.problem == "regression":
        return regression_metrics(labels, predictions)
    metrics = general_classification_metrics(labels, predictions, spec.num_labels)
    gold, pred = np.asarray(labels, dtype=int), np.asarray(predictions, dtype=int)
    for name in (spec.main_metric, *spec.extra_metrics):
        if name in metrics:
            continue
        if name not in TASK_OWN_METRICS:
            raise EvaluationError(
                f"task {spec.name!r} asks for metric {name!r}, which tuneyard does not compute.",
                f"Known metrics: {', '.join(sorted({*CLASSIFICATION_METRICS, *TASK_OWN_METRICS}))}.",
            )
        metrics[name] = TASK_OWN_METRICS[name](gold, pred)
    return metrics


def per_class_metrics(
    labels: ArrayLike, predictions: ArrayLike, label_names: Sequence[str]
) -> list[dict[str, Any]]:
    """One row per class: name, precision, recall, F1 and support (gold count)."""
    from sklearn.metrics import precision_recall_fscore_support

    gold, pred = np.asarray(labels, dtype=int), np.asarray(predictions, dtype=int)
    _check_lengths(gold, pred)
    precision, recall, f1, support = precision_recall_fscore_support(
        gold, pred, labels=list(range(len(label_names))), zero_division=0
    )
    return [
        {
            "label": name,
            "label_id": index,
            "precision": float(precision[index]),
            "recall": float(recall[index]),
            "f1": float(f1[index]),
            "support": int(support[index]),
        }
        for index, name in enumerate(label_names)
    ]


def predictions_from_logits(logits: np.ndarray, spec: TaskSpec) -> np.ndarray:
    """Class ids (argmax) for classification, the single output column for regression."""
    array = np.asarray(logits)
    if spec.problem == "regression":
        return array.reshape(array.shape[0], -1)[:, 0]
    return array.argmax(axis=-1)


def metric_names(spec: TaskSpec) -> list[str]:
    """The metrics :func:`classification_metrics` reports for ``spec``, in its order."""
    if spec.problem == "regression":
        sample: tuple[list[float], list[float]] = ([0.0, 1.0, 0.5], [0.1, 0.9, 0.4])
    else:
        sample = ([0, 1, 0], [0, 1, 1])
    return list(classification_metrics(sample[0], sample[1], spec))


def trainer_metrics(spec: TaskSpec) -> Callable[[Any], dict[str, float]]:
    """A ``compute_metrics`` for ``transformers.Trainer``: EvalPrediction -> metrics of ``spec``."""

    def compute_metrics(eval_prediction: Any) -> dict[str, float]:
        logits = eval_prediction.predictions
        if isinstance(logits, tuple):  # models that also return hidden states / attentions
            logits = logits[0]
        return classification_metrics(eval_prediction.label_ids, predictions_from_logits(logits, spec), spec)

    return compute_metrics
