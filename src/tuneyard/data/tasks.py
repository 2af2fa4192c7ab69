"""Named tasks: GLUE names mapped to their hub datasets, columns, labels and metrics.

A *task* here is a dataset with its columns, labels, splits and main metric (what
``--task`` names); its *task type* (:mod:`tuneyard.task_types`) is the kind of problem
it poses, which decides how a model is loaded, trained and scored on it. One
:class:`TaskSpec` per task is all the rest of tuneyard needs to know about a
benchmark; a local data folder gets a spec built from its files by its task type.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tuneyard.errors import DataError


@dataclass(frozen=True)
class TaskSpec:
    """What a task looks like: its columns, labels, splits and metrics."""

    name: str
    task_type: str = "sequence_classification"
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    label_names: tuple[str, ...] = ()
    main_metric: str = "accuracy"
    hub_id: str | None = None
    hub_config: str | None = None
    train_split: str = "train"
    eval_split: str = "validation"
    test_split: str = "test"
    problem: str = "classification"  # or "regression" (STS-B); causal_lm: "generation", "language_modeling"
    chat_template: str | None = None  # causal_lm: a template for a tokenizer without one
    extra_metrics: tuple[str, ...] = field(default_factory=tuple)

    @property
    def num_labels(self) -> int:
        """Output size of the head: 1 for regression."""
        return 1 if self.problem == "regression" else len(self.label_names)


def _glue(
    name: str, text: str, pair: str | None, labels: tuple[str, ...], metric: str = "accuracy", **extra: object
) -> TaskSpec:
    return TaskSpec(
        name=name,
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


def glue_task(name: str) -> TaskSpec:
    """The spec for a GLUE task name (case-insensitive, ``sst-2`` works too)."""
    key = name.lower().replace("-", "").replace("_", "")
    if key not in GLUE_TASKS:
        raise DataError(
            f"unknown task {name!r}.",
            f"Known tasks: {', '.join(sorted(GLUE_TASKS))}; or pass --data DIR for a local dataset.",
        )
    return GLUE_TASKS[key]
