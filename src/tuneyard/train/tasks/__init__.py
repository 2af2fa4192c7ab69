"""Task types: how to load, encode and score a model for one kind of task.

Each task type is a module with the same interface (see
:mod:`tuneyard.train.tasks.sequence_classification`); the recipe asks
:func:`task_type_for` and never special-cases a task. Audio classification and
causal-LM / instruction tuning are sibling modules to come.
"""

from __future__ import annotations

from types import ModuleType

from tuneyard.data.tasks import TaskSpec
from tuneyard.train.tasks import sequence_classification

TASK_TYPES: dict[str, ModuleType] = {"sequence_classification": sequence_classification}


def task_type_for(spec: TaskSpec) -> ModuleType:
    """The task type that trains ``spec`` (every TaskSpec today is sequence classification)."""
    return TASK_TYPES["sequence_classification"]
