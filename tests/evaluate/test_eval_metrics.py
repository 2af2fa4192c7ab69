"""Every metric against values worked out by hand on small fixed examples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tuneyard.data.tasks import TaskSpec
from tuneyard.errors import EvaluationError
from tuneyard.task_types.sequence_classification.glue import GLUE_TASKS
from tuneyard.task_types.sequence_classification.metrics import (
    classification_metrics,
    per_class_metrics,
    regression_metrics,
    trainer_metrics,
)

# 3 classes, supports 3 / 2 / 1. Per class (precision, recall, F1):
#   0: 2 of 2 predicted right, 2 of 3 found -> (1, 2/3, 4/5)
#   1: 1 of 2 right, 1 of 2 found           -> (1/2, 1/2, 1/2)
#   2: 1 of 2 right, 1 of 1 found           -> (1/2, 1, 2/3)
GOLD = [0, 0, 0, 1, 1, 2]
PRED = [0, 0, 1, 1, 2, 2]
THREE = TaskSpec(name="three", label_names=("a", "b", "c"))


def eval_prediction(predictions: np.ndarray, label_ids: np.ndarray):  # type: ignore[no-untyped-def]
    from transformers import EvalPrediction

    return EvalPrediction(predictions=predictions, label_ids=label_ids)


def test_multiclass_metrics_match_hand_computed_values() -> None:
    metrics = classification_metrics(GOLD, PRED, THREE)
    expected = {
        "accuracy": 4 / 6,
        "f1_macro": (4 / 5 + 1 / 2 + 2 / 3) / 3,  # 59/90
        "f1_micro": 4 / 6,
        "f1_weighted": (3 * 4 / 5 + 2 * 1 / 2 + 1 * 2 / 3) / 6,  # 61/90
        "precision_macro": (1 + 1 / 2 + 1 / 2) / 3,
        "precision_weighted": (3 * 1 + 2 * 1 / 2 + 1 * 1 / 2) / 6,
        "recall_macro": (2 / 3 + 1 / 2 + 1) / 3,
        "recall_weighted": 4 / 6,
        # multiclass MCC: (c*s - sum p_k t_k) / sqrt((s^2 - sum p_k^2)(s^2 - sum t_k^2)),
        # c=4 correct, s=6, predicted counts p=(2,2,2), true counts t=(3,2,1)
        "matthews_correlation": (4 * 6 - (2 * 3 + 2 * 2 + 2 * 1)) / math.sqrt((36 - 12) * (36 - 14)),
    }
    assert set(metrics) == set(expected)
    for name, value in expected.items():
        assert metrics[name] == pytest.approx(value), name


def test_per_class_rows_match_hand_computed_values() -> None:
    rows = per_class_metrics(GOLD, PRED, THREE.label_names)
    assert [(r["label"], r["support"]) for r in rows] == [("a", 3), ("b", 2), ("c", 1)]
    expected = [(1, 2 / 3, 4 / 5), (1 / 2, 1 / 2, 1 / 2), (1 / 2, 1, 2 / 3)]
    for row, (precision, recall, f1) in zip(rows, expected):
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((precision, recall, f1))


def test_class_never_predicted_nor_present_counts_as_zero_in_macro_average() -> None:
    four = TaskSpec(name="four", label_names=("a", "b", "c", "d"))
    metrics = classification_metrics(GOLD, PRED, four)
    assert metrics["f1_macro"] == pytest.approx((4 / 5 + 1 / 2 + 2 / 3 + 0) / 4)
    assert per_class_metrics(GOLD, PRED, four.label_names)[3]["support"] == 0


def test_averages_equal_scikit_learns_own_on_random_tables() -> None:
    # The averages are taken from one per-class pass: each must equal scikit-learn's own
    # average over all classes, also where a class is never predicted or absent.
    from sklearn.metrics import f1_score, matthews_corrcoef, precision_score, recall_score

    rng = np.random.default_rng(0)
    for trial in range(200):
        classes = int(rng.integers(2, 7))
        rows = int(rng.integers(1, 40))
        gold = rng.integers(0, classes, rows)
        pred = np.zeros(rows, dtype=int) if trial % 5 == 0 else rng.integers(0, classes, rows)
        spec = TaskSpec(name="random", label_names=tuple(str(c) for c in range(classes)))
        got = classification_metrics(gold, pred, spec)
        labels = list(range(classes))
        expected = {
            "accuracy": float(np.mean(gold == pred)),
            "matthews_correlation": matthews_corrcoef(gold, pred),
        }
        for name, score in (("f1", f1_score), ("precision", precision_score), ("recall", recall_score)):
            for average in ("macro", "weighted", "micro"):
                expected[f"{name}_{average}"] = score(
                    gold, pred, labels=labels, average=average, zero_division=0
                )
        for key, value in got.items():
            assert value == pytest.approx(expected[key], abs=1e-12), (trial, key)


def test_mrpc_and_qqp_report_binary_f1_of_the_positive_class() -> None:
    gold, pred = [1, 1, 1, 0, 0], [1, 1, 0, 1, 0]  # TP=2 FP=1 FN=1 TN=1
    for task in ("mrpc", "qqp"):
        metrics = classification_metrics(gold, pred, GLUE_TASKS[task])
        assert metrics["f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
        assert metrics["matthews_correlation"] == pytest.approx((2 * 1 - 1 * 1) / math.sqrt(3 * 3 * 2 * 2))
    assert "f1" not in classification_metrics(gold, pred, GLUE_TASKS["sst2"])


def test_cola_headline_metric_is_matthews() -> None:
    spec = GLUE_TASKS["cola"]
    metrics = classification_metrics([1, 1, 1, 0, 0], [1, 1, 0, 1, 0], spec)
    assert metrics[spec.main_metric] == pytest.approx(1 / 6)


def test_stsb_regression_pearson_spearman_and_errors() -> None:
    # deviations from the mean 2.5: gold (-1.5,-.5,.5,1.5), pred (-1.5,.5,-.5,1.5): cov 4 / var 5
    metrics = classification_metrics([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0], GLUE_TASKS["stsb"])
    assert metrics == pytest.approx({"pearson": 0.8, "spearmanr": 0.8, "mse": 0.5, "mae": 0.5})


def test_constant_regression_prediction_has_nan_correlation_not_zero() -> None:
    metrics = regression_metrics([1.0, 2.0, 3.0], [2.0, 2.0, 2.0])
    assert math.isnan(metrics["pearson"]) and math.isnan(metrics["spearmanr"])
    assert metrics["mse"] == pytest.approx(2 / 3)


def test_trainer_metrics_takes_an_eval_prediction_of_logits() -> None:
    logits = np.eye(3)[PRED] * 5.0 - 1.0
    metrics = trainer_metrics(THREE)(eval_prediction(logits, np.array(GOLD)))
    assert metrics == pytest.approx(classification_metrics(GOLD, PRED, THREE))
    with_hidden = eval_prediction((logits, np.zeros((6, 2, 4))), np.array(GOLD))
    assert trainer_metrics(THREE)(with_hidden)["accuracy"] == pytest.approx(4 / 6)


def test_trainer_metrics_for_regression_uses_the_single_output_column() -> None:
    spec = GLUE_TASKS["stsb"]
    prediction = eval_prediction(np.array([[1.0], [3.0], [2.0], [4.0]]), np.array([1.0, 2.0, 3.0, 4.0]))
    assert trainer_metrics(spec)(prediction)["pearson"] == pytest.approx(0.8)


def test_mismatched_lengths_and_empty_input_are_clear_errors() -> None:
    with pytest.raises(EvaluationError, match="3 labels but 2 predictions"):
        classification_metrics([0, 1, 0], [0, 1], THREE)
    with pytest.raises(EvaluationError, match="empty split"):
        classification_metrics([], [], THREE)


def test_unknown_task_metric_is_a_clear_error() -> None:
    spec = TaskSpec(name="odd", label_names=("a", "b"), main_metric="bleu")
    with pytest.raises(EvaluationError, match="'bleu'"):
        classification_metrics([0, 1], [0, 1], spec)
