"""Everything ``tuneyard finetune`` can be told, as one validated pydantic model.

CLI flags, ``--config FILE`` and ``--set a.b=v`` all land here (see
:func:`tuneyard.config.resolve_options`); the resolved model is saved into the run
folder as ``config.yaml`` and is what ``--resume`` reads back.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, PositiveInt, model_validator

from tuneyard.components.distillation import DistillOptions
from tuneyard.config import StrictModel
from tuneyard.data.options import DataOptions

StrategyName = Literal["full", "frozen", "lora", "lowrank"]
Precision = Literal["no", "fp16", "bf16"]


class LoraOptions(StrictModel):
    """PEFT LoRA settings; ``targets`` default to the family table's ``lora_targets``."""

    r: PositiveInt = 8
    alpha: PositiveInt = 16
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    targets: list[str] | None = None
    layers: str | None = None


class FinetuneOptions(DataOptions):
    """One fine-tuning run: what to train, on what, how, and where to file it."""

    checkpoint: str
    validation_fraction: float = Field(default=0.1, gt=0.0, lt=1.0)

    strategy: StrategyName | None = None
    lora: LoraOptions = Field(default_factory=LoraOptions)
    freeze_factors: bool = False
    reset_head: bool = False
    distill_from: str | None = Field(
        default=None,
        description="A teacher model (same labels) whose logits the run also learns; a lowrank run of a "
        "model compressed from a fine-tuned one defaults to that model.",
    )
    no_distill: bool = Field(default=False, description="Train on the labels alone, with no default teacher.")
    distill: DistillOptions = Field(default_factory=DistillOptions)

    epochs: float = Field(default=3.0, gt=0)
    learning_rate: float | None = Field(default=None, gt=0)
    batch_size: PositiveInt = 16
    eval_batch_size: PositiveInt | None = None
    grad_accum: PositiveInt = 1
    max_length: PositiveInt = 128
    packing: bool = False
    weight_decay: float = Field(default=0.0, ge=0)
    warmup_ratio: float = Field(default=0.0, ge=0, lt=1)
    precision: Precision = "no"
    seed: int = 42
    save_steps: PositiveInt | None = None
    keep: PositiveInt = 2
    metric_for_best: str | None = None
    report_to: list[str] = Field(default_factory=list)

    output_dir: str | None = None
    name: str | None = None
    project: str | None = None

    trainer: dict[str, Any] = Field(
        default_factory=dict, description="Extra transformers.TrainingArguments fields, passed through."
    )

    @model_validator(mode="after")
    def _one_data_source(self) -> FinetuneOptions:
        if (self.task is None) == (self.data is None):
            from tuneyard.errors import ConfigError

            raise ConfigError(
                "give exactly one of --task NAME or --data DIR.",
                "Example: --task sst2, or --data ./my_topics (train/validation/test CSV, JSONL or Parquet).",
            )
        return self
