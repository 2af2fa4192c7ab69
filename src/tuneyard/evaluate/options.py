"""Options of ``tuneyard eval`` and ``tuneyard eval-grid`` (flags, ``--config`` YAML, ``--set``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

from pydantic import Field

from tuneyard.config import Cli, StrictModel
from tuneyard.data.options import ColumnOptions, DataOptions
from tuneyard.task_types.causal_lm.options import AnswerOptions, GenerationOptions
from tuneyard.task_types.data_loading import load_data

if TYPE_CHECKING:
    from tuneyard.data.loading import TaskData


class RunOptions(StrictModel):
    """How to run the forward passes."""

    split: str = Field(default="validation", description="Split to score.")
    batch_size: int = Field(default=32, ge=1, description="Examples per forward pass.")
    max_length: int | None = Field(
        default=None,
        ge=8,
        description="Truncate inputs to this many tokens (default: the fine-tuning length, else 512).",
    )
    device: str | None = Field(default=None, description="cpu, cuda, cuda:1 ... (default: a GPU if present).")
    nb_eval_samples: int | None = Field(
        default=None, ge=1, description="Score the first N rows of each split, in file order (default: all)."
    )


class EvalOptions(DataOptions, RunOptions):
    """One model on one task or data folder (``answers``: how a causal LM's answers are made and graded)."""

    checkpoint: Annotated[str, Cli(aliases=("--model",))] = Field(
        description="Model folder (plain, compressed, LoRA adapter, run folder), a .gguf file or a hub id "
        "(needs --output-dir)."
    )
    output_dir: Annotated[str | None, Cli(path=True)] = Field(
        default=None, description="Folder for the results (required for a model outside the yard)."
    )
    answers: Annotated[AnswerOptions, Cli(flatten=True)] = Field(
        default_factory=AnswerOptions, title="Answers (chat data)"
    )


class GenerateOptions(DataOptions):
    """One model's answers to one chat split."""

    checkpoint: str = Field(
        description="Causal LM folder (run folder, best/, LoRA adapter), a .gguf file or a hub id."
    )
    split: str = Field(default="test", description="Split whose prompts to answer.")
    batch_size: int = Field(default=8, ge=1, description="Prompts per generate call.")
    device: str | None = Field(default=None, description="cpu, cuda, cuda:1 ... (default: a GPU if present).")
    output_dir: Annotated[str | None, Cli(path=True)] = Field(
        default=None, description="Folder for the answers (required for a model outside the yard)."
    )
    generation: Annotated[GenerationOptions, Cli(flatten=True)] = Field(
        default_factory=GenerationOptions, title="Generation"
    )


class GridOptions(ColumnOptions, RunOptions):
    """Every model on every task; a task is a named task or a local data folder."""

    models: list[str] = Field(min_length=1, description="Models to evaluate: --models A B C.")
    tasks: list[str] = Field(min_length=1, description="GLUE names or data folders: --tasks t1 t2.")
    output_dir: Annotated[str | None, Cli(path=True)] = Field(
        default=None, description="Grid folder instead of experiments/{experiment}."
    )
    experiment: str = Field(default="eval_grid", description="Grid folder name under experiments/.")
    checkpoint_to_eval: str = Field(
        default="best",
        description="Of a run folder: best, last (-1: the latest) or a checkpoint-{epoch}-{step} folder.",
    )
    answers: Annotated[AnswerOptions, Cli(flatten=True)] = Field(
        default_factory=AnswerOptions, title="Answers (chat data)"
    )


def load_eval_data(task_or_folder: str, columns: ColumnOptions) -> TaskData:
    """A named task, or a local folder (an existing directory wins over a name)."""
    folder = Path(task_or_folder).expanduser()
    if folder.is_dir():
        return load_data(DataOptions(data=str(folder), **columns.column_fields()))
    return load_data(DataOptions(task=task_or_folder))
