"""The experiment file: seed 002's ``config.yaml`` (tasks, a fine-tuning grid, an eval grid), validated.

```yaml
experiment: topics_study            # experiments/{experiment}/
tasks:                              # optional: seed-002 task entries, formatted by prepare
  sections: {dataset: data/debian_topics, user_prompt: "...", assistant_text_column: label}
finetuning:
  models: [base/a, base/b]
  data: data/debian_topics          # or task: sections (a task above) or a GLUE name
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
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from tuneyard.config import StrictModel, format_validation_error, read_config_file
from tuneyard.errors import ConfigError
from tuneyard.experiments.search import SearchSpec
from tuneyard.train.options import StrategyName

FINETUNED = "finetuned"  # evals.models entry: every run of the fine-tuning grid
AXES = ("model", "compression", "strategy", "lora_rank", "lora_layers", "seed")  # what exclude rules may name


class FinetuneGrid(StrictModel):
    """Lists that expand to a cross product of ``tuneyard finetune`` runs."""

    models: list[str] = Field(min_length=1)
    data: str | None = Field(default=None, description="A data folder or a dataset of the yard.")
    task: str | None = Field(default=None, description="A task of `tasks:` or a GLUE task name.")
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

    @model_validator(mode="after")
    def _one_data_source(self) -> FinetuneGrid:
        if (self.data is None) == (self.task is None):
            raise ConfigError(
                "finetuning: give exactly one of data or task.",
                "data: data/debian_topics (a folder or a dataset), or task: sections (a task of tasks:).",
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
    tasks: list[str] = Field(min_length=1)
    split: str = "test"
    nb_eval_samples: int | None = Field(default=None, gt=0)
    checkpoint_to_eval: str = "best"
    batch_size: int = Field(default=32, gt=0)
    max_length: int = Field(default=128, gt=0)


class ExperimentSpec(StrictModel):
    """One experiment file."""

    experiment: str = Field(description="Its folder: experiments/{experiment}/.")
    tasks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    finetuning: FinetuneGrid | None = None
    evals: EvalGrid | None = None
    search: SearchSpec | None = Field(
        default=None, description="The smallest model within X points of dense."
    )

    @model_validator(mode="after")
    def _task_is_known(self) -> ExperimentSpec:
        if self.finetuning is None and self.search is None:
            raise ConfigError("an experiment needs finetuning:, search:, or both.")
        task = self.finetuning.task if self.finetuning is not None else None
        if task is not None and self.tasks and task not in self.tasks:
            raise ConfigError(
                f"finetuning.task {task!r} is not a task of tasks:.", f"Its tasks: {', '.join(self.tasks)}."
            )
        return self


def load_experiment(path: str | Path) -> ExperimentSpec:
    """The experiment file at ``path``; a bad field is a :class:`ConfigError` naming it."""
    data = read_config_file(path)
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        error = format_validation_error(ExperimentSpec, exc)
        raise ConfigError(f"{path}: {error.message}", error.hint) from None
