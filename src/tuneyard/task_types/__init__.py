"""Task types: the extension point for the kind of problem a model solves.

A task type is one module (here a package) that implements
:class:`tuneyard.task_types.base.TaskType`; registering it is one line in
:data:`TASK_TYPES`. finetune, eval, eval-grid and compress look up the task type of
their data here and never special-case one. The table names modules rather than
importing them, so the CLI can list the choices without loading torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from tuneyard.errors import ConfigError

if TYPE_CHECKING:
    from tuneyard.task_types.base import TaskType

# name -> module defining ``TASK_TYPE``.
TASK_TYPES: dict[str, str] = {
    "sequence_classification": "tuneyard.task_types.sequence_classification",
    "causal_lm": "tuneyard.task_types.causal_lm",
}
DEFAULT_TASK_TYPE = "sequence_classification"


def get_task_type(name: str | None = None) -> TaskType:
    """The task type called ``name`` (default: sequence classification)."""
    chosen = name or DEFAULT_TASK_TYPE
    if chosen not in TASK_TYPES:
        raise ConfigError(f"unknown task type {chosen!r}.", f"Task types: {', '.join(TASK_TYPES)}.")
    task_type: TaskType = importlib.import_module(TASK_TYPES[chosen]).TASK_TYPE
    return task_type


def task_type_for_peft(peft_task_type: str) -> TaskType | None:
    """The task type whose LoRA adapters PEFT marks ``peft_task_type`` (``SEQ_CLS``), if any."""
    wanted = peft_task_type.removeprefix("TaskType.")
    for name in TASK_TYPES:
        task_type = get_task_type(name)
        if task_type.peft_task_type == wanted:
            return task_type
    return None
