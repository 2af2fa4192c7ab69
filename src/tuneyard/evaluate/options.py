"""Options of ``tuneyard eval`` and ``tuneyard eval-grid`` (flags, ``--config`` YAML, ``--set``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

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


Backend = Literal["transformers", "server"]


class ServerOptions(StrictModel):
    """Where a chat model's answers come from: transformers in this process, or an OpenAI-compatible server.

    The served answers are requested greedily for the prompts rendered here (the model's own chat
    template, as in-process), and graded as in-process ones are.
    """

    backend: Backend = Field(
        default="transformers",
        description="transformers: load the model here. server: ask an OpenAI-compatible server for every "
        "answer: tuneyard starts llama.cpp's server for a .gguf model, vLLM for a model folder where vLLM "
        "and a GPU are present, or uses --server-url.",
    )
    server_url: str | None = Field(
        default=None,
        description="With --backend server: a running server's base URL (http://host:port/v1) instead of "
        "one tuneyard starts; it must serve the model under test.",
    )
    server_model: str | None = Field(
        default=None,
        description="With --server-url: the model name to ask for (default: the first it lists).",
    )
    api_key_env: str = Field(
        default="OPENAI_API_KEY",
        description="With --backend server: the environment variable holding the server's API key (unset: "
        "no key is sent).",
    )
    server_args: Annotated[dict[str, Any], Cli(flag="--server-arg", repeat=True)] = Field(
        default_factory=dict,
        description="An option of the server tuneyard starts, name=value (repeatable): n_ctx=2048 for "
        "llama.cpp's, tensor_parallel_size=2 or max_model_len=4096 for vLLM's (seed 002's "
        "model_server_args).",
    )

    @property
    def served(self) -> bool:
        return self.backend == "server"


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
    server: Annotated[ServerOptions, Cli(flatten=True)] = Field(
        default_factory=ServerOptions, title="Backend (chat data)"
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
    server: Annotated[ServerOptions, Cli(flatten=True)] = Field(
        default_factory=ServerOptions, title="Backend (chat data)"
    )


def load_eval_data(task_or_folder: str, columns: ColumnOptions) -> TaskData:
    """A named task, or a local folder (an existing directory wins over a name)."""
    folder = Path(task_or_folder).expanduser()
    if folder.is_dir():
        return load_data(DataOptions(data=str(folder), **columns.column_fields()))
    return load_data(DataOptions(task=task_or_folder))
