"""Everything ``tuneyard finetune`` can be told, as one validated pydantic model.

CLI flags, ``--config FILE`` and ``--set a.b=v`` all land here (see
:func:`tuneyard.config.resolve_options`); the resolved model is saved into the run
folder as ``config.yaml`` and is what ``--resume`` reads back.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, PositiveInt, model_validator

from tuneyard.components.distillation import DistillOptions
from tuneyard.config import Cli, StrictModel
from tuneyard.data.options import DataOptions
from tuneyard.models.dtypes import LoadDtype

StrategyName = Literal["full", "frozen", "lora", "qlora", "lowrank", "adapter"]
Precision = Literal["no", "fp16", "bf16"]
DEFAULT_MAX_LENGTH = 128  # tokens, where the data's task type fits none to the data


class LoraOptions(StrictModel):
    """PEFT LoRA settings; ``targets`` default to every linear layer of the model's blocks."""

    r: PositiveInt = Field(default=8, description="LoRA rank.")
    alpha: PositiveInt = Field(default=16, description="LoRA alpha (scaling).")
    dropout: float = Field(default=0.1, ge=0.0, lt=1.0, description="LoRA dropout.")
    targets: list[str] | None = Field(
        default=None,
        description="Layers that get adapters: attn, mlp, all-linear (the default: every linear layer "
        "of the blocks) or module names (q_proj, self_attn.o_proj).",
    )
    layers: str | None = Field(default=None, description="Layers that get adapters: 0,1,2 or 7-12 or a mix.")


class AdapterOptions(StrictModel):
    """``--strategy adapter`` settings: the width of each block's bottleneck."""

    dim: PositiveInt = Field(
        default=16,
        description="Bottleneck width of each block's adapter (transformers' attention adapters), or the "
        "LoRA rank on the blocks' MLP layers where a model has no adapter slot.",
    )


# The options models of the installed task types, by --help panel (read when help or flags are built).
TASK_OPTIONS = "tuneyard.task_types:options_models"


class FinetuneOptions(DataOptions):
    """One fine-tuning run: what to train, on what, how, and where to file it."""

    checkpoint: str = Field(description="Model folder (plain, compressed), a .gguf file or a hub id.")
    tokenizer: str | None = Field(
        default=None,
        description="Tokenizer folder or hub id, when not the checkpoint's own (saved with the run).",
    )
    validation_fraction: float = Field(
        default=0.1, gt=0.0, lt=1.0, description="Share of train used as validation when the data has none."
    )

    strategy: StrategyName | None = Field(
        default=None, description="How to train (default: lowrank for a compressed model, else full)."
    )
    lora: LoraOptions = Field(default_factory=LoraOptions, title="LoRA")
    adapter: AdapterOptions = Field(default_factory=AdapterOptions, title="Adapters")
    freeze_factors: bool = Field(
        default=False, description="Compressed models: keep the low-rank factors fixed, train the rest."
    )
    reset_head: bool = Field(
        default=False, description="Replace a classifier head whose label count does not match the task."
    )
    distill_from: str | None = Field(
        default=None,
        description="A teacher model (same labels) whose logits the run also learns; a lowrank run of a "
        "model compressed from a fine-tuned one defaults to that model.",
    )
    no_distill: bool = Field(default=False, description="Train on the labels alone, with no default teacher.")
    distill: DistillOptions = Field(default_factory=DistillOptions, title="Distillation (with a teacher)")

    epochs: float = Field(default=3.0, gt=0, description="Training epochs.")
    learning_rate: Annotated[float | None, Cli(default_from="tuneyard.train.strategies:default_rates")] = (
        Field(default=None, gt=0, description="Peak learning rate.")
    )
    batch_size: PositiveInt = Field(default=16, description="Per-device batch size.")
    eval_batch_size: PositiveInt | None = Field(
        default=None, description="Per-device batch size of evaluation (default: the training one)."
    )
    grad_accum: PositiveInt = Field(default=1, description="Gradient accumulation steps.")
    max_length: PositiveInt | None = Field(
        default=None,
        description=f"Truncate inputs to this many tokens (default: {DEFAULT_MAX_LENGTH}; chat data: "
        "its longest train row, within the model's context).",
    )
    packing: bool = Field(
        default=False, description="Chat data: pack rows into --max-length sequences (TRL)."
    )
    # The data's task type's own options: each installed task type's options model is offered
    # as flags in a --help panel of its own; the task type validates them (train/plan.py).
    task_options: Annotated[dict[str, Any], Cli(flatten=True, models_from=TASK_OPTIONS)] = Field(
        default_factory=dict, description="Options of the data's task type (its own options model)."
    )
    weight_decay: float = Field(default=0.0, ge=0, description="AdamW weight decay.")
    warmup_ratio: float = Field(
        default=0.0, ge=0, lt=1, description="Share of the steps that warm the learning rate up."
    )
    dtype: LoadDtype = Field(
        default="auto",
        description="Dtype the weights load and train in (auto: the checkpoint's own on a GPU, "
        "float32 on a CPU).",
    )
    precision: Precision = Field(default="no", description="Mixed precision.")
    gradient_checkpointing: bool = Field(
        default=False, description="Recompute each block's activations in the backward pass, not keep them."
    )
    seed: int = Field(default=42, description="Seed for the head, data order and dropout.")
    save_steps: PositiveInt | None = Field(
        default=None, description="Evaluate and checkpoint every N steps (default: every epoch)."
    )
    keep: PositiveInt = Field(default=2, description="Checkpoints to keep.")
    metric_for_best: str | None = Field(
        default=None, description="Metric that picks best/ (default: the task's main metric)."
    )
    report_to: list[str] = Field(
        default_factory=list, description="Also log to: wandb, mlflow (tensorboard/ is always written)."
    )

    output_dir: Annotated[str | None, Cli(path=True)] = Field(
        default=None, description="Exact run folder instead of the yard layout."
    )
    name: str | None = Field(default=None, description="Run name (the last folder of the layout).")
    project: str | None = Field(
        default=None,
        description="File under outputs/{project}/{dataset}/{name}; at the end also writes "
        "{name}_weights.png (+ .csv) beside the run and refreshes outputs/{project}/metrics.csv "
        "(one row per completed run of the project).",
    )

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
