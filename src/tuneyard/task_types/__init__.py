"""Task types: the extension point for the kind of problem a model solves.

A task type is one package whose ``TASK_TYPE`` is a :class:`tuneyard.task_types.base.TaskType`,
registered as a Python entry point in the group ``tuneyard.task_types`` (name ->
``module:attribute``). tuneyard's own task types register through the same group in
its ``pyproject.toml``, so a separate package adds one the same way, with no change
here. The table holds the entry points' targets rather than the objects, so the CLI
lists the choices without importing torch.

This layer also decides which task type a folder or a model is: :mod:`.choice`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from tuneyard.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from tuneyard.task_types.base import TaskType

ENTRY_POINT_GROUP = "tuneyard.task_types"
DEFAULT_TASK_TYPE = "sequence_classification"


def _registered() -> dict[str, str]:
    """name -> ``module:attribute`` of every installed task type, built-ins first."""
    found = {point.name: point.value for point in entry_points(group=ENTRY_POINT_GROUP)}
    builtin = sorted(name for name, target in found.items() if target.startswith("tuneyard."))
    return {name: found[name] for name in [*builtin, *sorted(set(found) - set(builtin))]}


# name -> "module:attribute" defining the TaskType.
TASK_TYPES: dict[str, str] = _registered()


def options_models() -> dict[str, type[BaseModel]]:
    """The task types' own options models, by the ``--help`` panel that shows their flags."""
    found = {name: get_task_type(name).options for name in TASK_TYPES}
    return {f"Task type {name}": model for name, model in found.items() if model is not None}


def get_task_type(name: str | None = None) -> TaskType:
    """The task type called ``name`` (default: sequence classification)."""
    chosen = name or DEFAULT_TASK_TYPE
    if chosen not in TASK_TYPES:
        raise ConfigError(
            f"unknown task type {chosen!r}.",
            f"Task types: {', '.join(TASK_TYPES)} (a plugin package adds one through the "
            f"{ENTRY_POINT_GROUP!r} entry point group).",
        )
    module, _, attribute = TASK_TYPES[chosen].partition(":")
    task_type: TaskType = getattr(importlib.import_module(module), attribute or "TASK_TYPE")
    return task_type
