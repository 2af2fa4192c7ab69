"""What a task looks like: :class:`TaskSpec`.

A *task* here is a dataset with its columns, labels, splits and main metric (what
``--task`` names); its *task type* (:mod:`tuneyard.task_types`) is the kind of problem
it poses, which decides how a model is loaded, trained and scored on it. One
:class:`TaskSpec` per task is all the rest of tuneyard needs to know about a
benchmark; a local data folder gets a spec built from its files by its task type, and
a named task (GLUE's ``sst2``) is one its task type knows
(:attr:`tuneyard.task_types.base.DataRole.named_tasks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TaskSpec:
    """What a task looks like: its columns, labels, splits and metrics."""

    name: str
    task_type: str | None = None  # None: the default task type (tuneyard.task_types.DEFAULT_TASK_TYPE)
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
