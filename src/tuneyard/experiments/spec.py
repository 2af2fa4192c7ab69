"""The experiment file: seed 002's ``config.yaml`` (tasks, a fine-tuning grid, an eval grid), validated.

```yaml
experiment: topics_study            # experiments/{experiment}/
tasks:                              # optional: seed-002 task entries, formatted by prepare
  sections: {dataset: data/debian_topics, user_prompt: "...", assistant_text_column: label}
finetuning:
  models: [base/a, base/b]
  data: data/debian_topics          # or tasks: [sections, interface] (tasks above, or GLUE names)
  compressions: [null, {method: whiten, ratio: 0.5}]  # null: as is; else tuneyard compress options
  strategies: [full, lora]          # lora: uncompressed starts only; lowrank: compressed ones only
  lora_ranks: [8, 16]               # lora cells only
  lora_layers: [null, "0-1"]        # lora cells only; null = every layer
  seeds: [42]
  epochs: 1
  options: {max_length: 64}         # any other `tuneyard finetune` option, for every cell
  exclude: [{model: base/b, strategy: full}]
evals:
  models: finetuned                 # the grid's runs; or a list, which may include "finetuned"
  tasks: [data/debian_topics]
  nb_eval_samples: null
  checkpoint_to_eval: best
  backend: transformers             # or server: answers from llama.cpp's server (a .gguf), vLLM, server_url
  model_server_args: {n_ctx: 4096}  # backend server: the options of the server tuneyard starts
```

Seed 002's own file is read as it is (:mod:`tuneyard.experiments.seed002_fields`): task
entries at the top level beside ``finetuning:`` (``task1: {...}``), ``model_path`` /
``tokenizer_path``, the ``fusion...`` strategy flags, ``checkpoint_to_eval: -1``,
``model_server_args``; ``finetuning.tasks`` and ``evals.tasks`` default to every task of
the file, so each start is trained on each task and every run is evaluated on every
task: seed 002's transfer matrix. A file may have only ``evals:`` (its ``models``
listed) or only ``finetuning:``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from tuneyard.config import StrictModel, format_validation_error, read_config_file
from tuneyard.data.formatting import TaskFormat, TaskGrader, task_grader
from tuneyard.errors import ConfigError, EvaluationError
from tuneyard.evaluate.options import Backend, ServerOptions
from tuneyard.experiments.search import SearchSpec
from tuneyard.experiments.seed002_fields import ignored_fields
from tuneyard.train.options import StrategyName

FINETUNED = "finetuned"  # evals.models entry: every run of the fine-tuning grid
# A cell's axes, what exclude rules may name; task: the task it trains on (None with finetuning.data)
AXES = ("model", "task", "compression", "strategy", "lora_rank", "lora_layers", "seed")


class FinetuneGrid(StrictModel):
    """Lists that expand to a cross product of ``tuneyard finetune`` runs."""

    models: list[str] = Field(default_factory=list, description="The starts (or seed 002's model_path).")
    data: str | None = Field(default=None, description="A data folder or a dataset of the yard.")
    tasks: list[str] = Field(
        default_factory=list,
        description="The task axis: each start trained on each task (of the file, a data folder or a GLUE "
        "name); default: every task of the file.",
    )
    task: str | None = Field(default=None, description="One task: tasks: [task].")
    compressions: list[dict[str, Any] | None] = Field(
        default_factory=lambda: [None], min_length=1,
        description="Starts: null (the model as it is) or tuneyard compress options (method, ratio or rank).",
    )  # fmt: skip
    strategies: list[StrategyName] = Field(default_factory=lambda: ["lora"], min_length=1)
    lora_ranks: list[int] = Field(default_factory=lambda: [8], min_length=1)
    lora_layers: list[str | None] = Field(default_factory=lambda: [None], min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [42], min_length=1)
    epochs: float = Field(default=3.0, gt=0)
    learning_rate: float | None = Field(default=None, gt=0)
    batch_size: int = Field(default=16, gt=0)
    options: dict[str, Any] = Field(default_factory=dict, description="Other finetune options, every cell.")
    exclude: list[dict[str, Any]] = Field(default_factory=list)
    # Seed 002's fields (tuneyard.experiments.seed002_fields says what each sets).
    model_path: str | None = Field(default=None, description="Seed 002's one model: models: [model_path].")
    tokenizer_path: str | None = Field(default=None, description="The finetune --tokenizer of every cell.")
    fusion: bool = False
    fusion_encoder: bool = Field(default=False, alias="fusion+encoder")
    fusion_decoder: bool = Field(default=False, alias="fusion+decoder")
    fusion_encoder_decoder: bool = Field(default=False, alias="fusion+encoder+decoder")

    @model_validator(mode="after")
    def _one_data_source(self) -> FinetuneGrid:
        given = [name for name in ("data", "task", "tasks") if getattr(self, name)]
        if len(given) > 1:
            raise ConfigError(
                f"finetuning: give one of data, task or tasks, not {' and '.join(given)}.",
                "data: data/debian_topics (a folder or a dataset), or tasks: [sections, interface] "
                "(tasks of the file, each trained on in turn).",
            )
        if self.task is not None:
            self.tasks = [self.task]
        return self

    @model_validator(mode="after")
    def _seed_fields(self) -> FinetuneGrid:
        """``model_path`` is the one start; ``fusion+encoder+decoder`` and ``lora_ranks`` the strategies."""
        if self.model_path is not None:
            if self.models:
                raise ConfigError(
                    "finetuning: give models or model_path, not both.", "models: [a, b] lists several."
                )
            self.models = [self.model_path]
        if not self.models:
            raise ConfigError(
                "finetuning: no model to fine-tune.", "models: [base/model] (or model_path: base/model)."
            )
        given = self.model_fields_set
        if "strategies" not in given and "fusion_encoder_decoder" in given:
            lora = ["lora"] if "lora_ranks" in given or not self.fusion_encoder_decoder else []
            self.strategies = (["full"] if self.fusion_encoder_decoder else []) + lora  # type: ignore[assignment]
        elif self.fusion_encoder_decoder and "full" not in self.strategies:
            raise ConfigError(
                "finetuning: fusion+encoder+decoder: true (a full run) but strategies leaves out full.",
                "Add full to strategies, or drop the flag.",
            )
        return self

    @field_validator("exclude")
    @classmethod
    def _known_axes(cls, rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for rule in rules:
            unknown = [key for key in rule if key not in AXES]
            if unknown:
                raise ValueError(
                    f"exclude rule {rule} names {unknown[0]!r}; rules may name {', '.join(AXES)}"
                )
        return rules


class EvalGrid(StrictModel):
    """Every model on every task (``tuneyard eval-grid``)."""

    models: list[str] | Literal["finetuned"] = FINETUNED
    tasks: list[str] = Field(
        default_factory=list, description="Tasks of the file, data folders, GLUE names (default: the file's)."
    )
    split: str = "test"
    nb_eval_samples: int | None = Field(default=None, gt=0)
    checkpoint_to_eval: str = Field(
        default="best", description="Of each run: best, last (-1: the latest) or checkpoint-{epoch}-{step}."
    )
    batch_size: int = Field(default=32, gt=0)
    max_length: int = Field(default=128, gt=0)
    grader: TaskGrader | None = Field(
        default=None, description="Grades every chat task (default: each task's own grader, else exact)."
    )
    backend: Backend = Field(
        default="transformers",
        description="transformers (in-process) or server: answers from a served model.",
    )
    server_url: str | None = Field(default=None, description="backend server: a running server instead.")
    server_model: str | None = Field(default=None, description="backend server: the model name to ask.")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="backend server: the key's variable.")
    model_server_args: dict[str, Any] | None = Field(
        default=None, description="Seed 002's: options of the server tuneyard starts (backend server)."
    )

    def server_options(self) -> ServerOptions:
        """``tuneyard eval``'s backend options for these evals (``model_server_args``: the server's)."""
        return ServerOptions(
            backend=self.backend, server_url=self.server_url, server_model=self.server_model,
            api_key_env=self.api_key_env, server_args=self.model_server_args or {},
        )  # fmt: skip

    @field_validator("checkpoint_to_eval", mode="before")
    @classmethod
    def _latest(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value != -1:
                raise ValueError(
                    f"{value} is not a checkpoint: -1 is the latest (last/); "
                    "otherwise name one: best, last or checkpoint-{epoch}-{step}"
                )
            return "last"
        return value

    @field_validator("grader", mode="before")
    @classmethod
    def _grader_settings(cls, value: Any) -> Any:
        from tuneyard.components.graders import grader_name

        grader = task_grader(value)
        return grader.model_copy(update={"name": grader_name(grader.name)}) if grader else None


class ExperimentSpec(StrictModel):
    """One experiment file."""

    experiment: str = Field(description="Its folder: experiments/{experiment}/.")
    tasks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    finetuning: FinetuneGrid | None = None
    evals: EvalGrid | None = None
    search: SearchSpec | None = Field(
        default=None, description="The smallest model within X points of dense."
    )

    @model_validator(mode="before")
    @classmethod
    def _top_level_tasks(cls, data: Any) -> Any:
        """Seed 002's task entries at the top level (``task1: {user_prompt: ...}``) join ``tasks:``."""
        if not isinstance(data, dict):
            return data
        entries = {
            key: value for key, value in data.items()
            if key not in cls.model_fields and isinstance(value, dict) and TASK_KEYS & set(value)
        }  # fmt: skip
        empty = [key for key, value in data.items() if key not in cls.model_fields and value is None]
        if empty:
            raise ConfigError(
                f"{empty[0]}: is empty.",
                f"Give the task's fields ({', '.join(sorted(TASK_KEYS))}), or delete the line.",
            )
        both = sorted(set(entries) & set(data.get("tasks") or {}))
        if both:
            raise ConfigError(
                f"task {both[0]!r} is both under tasks: and at the top level.", "Keep one of them."
            )
        rest = {key: value for key, value in data.items() if key not in entries}
        return {**rest, "tasks": {**(data.get("tasks") or {}), **entries}} if entries else data

    @model_validator(mode="after")
    def _task_is_known(self) -> ExperimentSpec:
        if self.finetuning is None and self.search is None and self.evals is None:
            raise ConfigError("an experiment needs finetuning:, evals:, search:, or several of them.")
        for name, entry in self.tasks.items():
            check_task(name, entry)
        if self.finetuning is not None:
            self._training_task(self.finetuning)
        if self.evals is not None:
            self._eval_tasks(self.evals)
        return self

    def _training_task(self, grid: FinetuneGrid) -> None:
        """Without data or tasks: every task of the file, each start trained on each (seed 002's meaning)."""
        if len(set(grid.tasks)) < len(grid.tasks):
            raise ConfigError(f"finetuning.tasks {grid.tasks} names a task twice.", "Name each task once.")
        unknown = [task for task in grid.tasks if self.tasks and not known_task(task, self.tasks)]
        if unknown:
            raise ConfigError(
                f"finetuning.tasks: {unknown[0]!r} is neither a task of the file nor a data folder.",
                f"Its tasks: {', '.join(self.tasks)}.",
            )
        if grid.data is not None or grid.tasks:
            return
        if not self.tasks:
            raise ConfigError(
                "finetuning: nothing to train on.",
                "data: data/debian_topics (a folder or a dataset), or a task entry in the file.",
            )
        grid.tasks = list(self.tasks)

    def _eval_tasks(self, evals: EvalGrid) -> None:
        if evals.models == FINETUNED and self.finetuning is None:
            raise ConfigError(
                "evals: models: finetuned needs a finetuning: section.",
                "List the models to evaluate: evals: {models: [base/model, ...]}.",
            )
        if not evals.tasks:
            if not self.tasks:
                raise ConfigError(
                    "evals: no task to evaluate on.", "tasks: [data/debian_topics], or task entries."
                )
            evals.tasks = list(self.tasks)

    @property
    def warnings(self) -> list[str]:
        """What the file asks for that tuneyard reads differently or not at all (each names its field)."""
        notes: list[str] = []
        if self.finetuning is not None:
            notes += ignored_fields("finetuning", self.finetuning.model_dump(by_alias=True))
        if self.evals is not None:
            notes += ignored_fields("evals", self.evals.model_dump())
            if self.evals.model_server_args and not self.evals.server_options().served:
                notes.append(
                    "evals.model_server_args reaches a server only with evals.backend: server; these evals "
                    "run in-process with transformers, so it is unused."
                )
        return notes


TASK_KEYS = set(TaskFormat.model_fields)  # a top-level mapping with any of these is a task entry


def known_task(task: str, entries: dict[str, Any]) -> bool:
    """A task entry of the file, a folder that exists or a GLUE name (a typo of an entry is none of them)."""
    from tuneyard.task_types.sequence_classification.glue import GLUE_TASKS

    return task in entries or Path(task).expanduser().is_dir() or task.lower() in GLUE_TASKS


def check_task(name: str, entry: dict[str, Any]) -> None:
    """A task entry's fields and its grader's name, checked when the file is read (not when prepared)."""
    from tuneyard.components.graders import grader_name

    try:
        task = TaskFormat.model_validate(entry)
        if task.grader is not None:
            grader_name(task.grader.name)
    except ValidationError as exc:
        error = format_validation_error(TaskFormat, exc)
        raise ConfigError(f"task {name!r}: {error.message}", error.hint) from None
    except EvaluationError as exc:
        raise ConfigError(f"task {name!r}: {exc.message}", exc.hint) from None


def load_experiment(path: str | Path) -> ExperimentSpec:
    """The experiment file at ``path``; a bad field is a :class:`ConfigError` naming it.

    Without ``experiment:`` (seed 002's file has none), the experiment is named after the
    file: ``config.yaml`` runs into ``experiments/config/``.
    """
    data = read_config_file(path)
    data.setdefault("experiment", Path(path).stem)
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        error = format_validation_error(ExperimentSpec, exc)
        raise ConfigError(f"{path}: {error.message}", error.hint) from None
