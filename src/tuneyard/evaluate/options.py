"""Options of ``tuneyard eval`` and ``tuneyard eval-grid`` (flags, ``--config`` YAML, ``--set``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from tuneyard.config import StrictModel

if TYPE_CHECKING:
    from tuneyard.data.loading import TaskData


class DataOptions(StrictModel):
    """How to read a local data folder's columns (GLUE tasks know their own)."""

    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"


class RunOptions(StrictModel):
    """How to run the forward passes."""

    split: str = "validation"
    batch_size: int = Field(default=32, ge=1)
    max_length: int | None = Field(default=None, ge=8)
    device: str | None = None


class EvalOptions(DataOptions, RunOptions):
    """One model on one task or data folder."""

    checkpoint: str
    task: str | None = None
    data: str | None = None
    output_dir: str | None = None


class GridOptions(DataOptions, RunOptions):
    """Every model on every task; a task is a GLUE name or a local data folder."""

    models: list[str] = Field(min_length=1)
    tasks: list[str] = Field(min_length=1)
    output_dir: str | None = None
    experiment: str = "eval_grid"


def load_eval_data(task_or_folder: str, columns: DataOptions, is_folder: bool | None = None) -> TaskData:
    """A GLUE task by name, or a local folder (an existing directory wins over a name)."""
    from tuneyard.data.loading import load_task_data

    folder = Path(task_or_folder).expanduser()
    if is_folder if is_folder is not None else folder.is_dir():
        return load_task_data(
            data_dir=folder,
            text_column=columns.text_column,
            text_pair_column=columns.text_pair_column,
            label_column=columns.label_column,
        )
    return load_task_data(task=task_or_folder)
