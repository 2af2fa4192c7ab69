"""Options of ``tuneyard eval`` and ``tuneyard eval-grid`` (flags, ``--config`` YAML, ``--set``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field

from tuneyard.config import StrictModel
from tuneyard.data.options import ColumnOptions, DataOptions
from tuneyard.task_types.causal_lm.options import AnswerOptions, GenerationOptions
from tuneyard.task_types.data_loading import load_data

if TYPE_CHECKING:
    from tuneyard.data.loading import TaskData


class RunOptions(StrictModel):
    """How to run the forward passes."""

    split: str = "validation"
    batch_size: int = Field(default=32, ge=1)
    max_length: int | None = Field(default=None, ge=8)
    device: str | None = None
    nb_eval_samples: int | None = Field(
        default=None, ge=1, description="Score the first N rows of each split."
    )


class EvalOptions(DataOptions, RunOptions):
    """One model on one task or data folder (``answers``: how a causal LM's answers are made and graded)."""

    checkpoint: str
    output_dir: str | None = None
    answers: AnswerOptions = Field(default_factory=AnswerOptions)


class GenerateOptions(DataOptions):
    """One model's answers to one chat split."""

    checkpoint: str
    split: str = "test"
    batch_size: int = Field(default=8, ge=1)
    device: str | None = None
    output_dir: str | None = None
    generation: GenerationOptions = Field(default_factory=GenerationOptions)


class GridOptions(ColumnOptions, RunOptions):
    """Every model on every task; a task is a named task or a local data folder."""

    models: list[str] = Field(min_length=1)
    tasks: list[str] = Field(min_length=1)
    output_dir: str | None = None
    experiment: str = "eval_grid"
    checkpoint_to_eval: str = Field(
        default="best", description="Of a run folder: best, last or a checkpoint-{epoch}-{step} folder."
    )
    answers: AnswerOptions = Field(default_factory=AnswerOptions)


def load_eval_data(task_or_folder: str, columns: ColumnOptions) -> TaskData:
    """A named task, or a local folder (an existing directory wins over a name)."""
    folder = Path(task_or_folder).expanduser()
    if folder.is_dir():
        return load_data(DataOptions(data=str(folder), **columns.column_fields()))
    return load_data(DataOptions(task=task_or_folder))
