"""GLUE's tasks: names mapped to their hub datasets, columns, labels and metrics.

The named tasks ``--task`` takes; sequence classification owns them because it is
the task type that loads them (:func:`tuneyard.task_types.sequence_classification.data.load_named`).
"""

from __future__ import annotations

from tuneyard.data.tasks import TaskSpec
from tuneyard.task_types.sequence_classification.data import NAME


def _glue(
    name: str, text: str, pair: str | None, labels: tuple[str, ...], metric: str = "accuracy", **extra: object
) -> TaskSpec:
    return TaskSpec(
        name=name,
        task_type=NAME,
        text_column=text,
        text_pair_column=pair,
        label_names=labels,
        main_metric=metric,
        hub_id="nyu-mll/glue",
        hub_config=name,
        **extra,
    )  # type: ignore[arg-type]


GLUE_TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        _glue("sst2", "sentence", None, ("negative", "positive")),
        _glue("cola", "sentence", None, ("unacceptable", "acceptable"), "matthews_correlation"),
        _glue("mrpc", "sentence1", "sentence2", ("not_equivalent", "equivalent"), "f1"),
        _glue("qqp", "question1", "question2", ("not_duplicate", "duplicate"), "f1"),
        _glue("qnli", "question", "sentence", ("entailment", "not_entailment")),
        _glue("rte", "sentence1", "sentence2", ("entailment", "not_entailment")),
        _glue(
            "mnli",
            "premise",
            "hypothesis",
            ("entailment", "neutral", "contradiction"),
            eval_split="validation_matched",
            test_split="test_matched",
        ),
        _glue(
            "stsb",
            "sentence1",
            "sentence2",
            (),
            "pearson",
            problem="regression",
            extra_metrics=("spearmanr",),
        ),
    )
}
