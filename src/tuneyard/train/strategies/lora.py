"""``lora``: PEFT LoRA adapters on chosen modules of chosen layers; the task's head trains in full.

``--lora-targets`` default to the family table's ``lora_targets``; ``--lora-layers``
(``0,1,2``, ``7-12``) becomes PEFT's ``layers_to_transform`` with the family's
``layers_pattern``, so only those transformer blocks get adapters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuneyard.errors import TrainingError
from tuneyard.train.layers import check_layers, parse_layers

if TYPE_CHECKING:
    from torch import nn

    from tuneyard.models.family import Family
    from tuneyard.task_types.base import TaskType
    from tuneyard.train.options import FinetuneOptions

NAME = "lora"
DEFAULT_LEARNING_RATE = 2e-4


def selected_layers(model: nn.Module, options: FinetuneOptions) -> list[int] | None:
    """The ``--lora-layers`` as numbers, checked against the model's depth (None: all)."""
    spec = options.lora.layers
    if spec is None:
        return None
    layers = parse_layers(spec)
    check_layers(spec, layers, int(model.config.num_hidden_layers))  # type: ignore[union-attr]
    return layers


def apply(model: nn.Module, options: FinetuneOptions, family: Family, task_type: TaskType) -> nn.Module:
    """Wrap ``model`` in a PEFT model with LoRA adapters; the task type's head trains in full."""
    from peft import LoraConfig, get_peft_model

    from tuneyard.models.lowrank import lowrank_layers

    if any(True for _ in lowrank_layers(model)):
        raise TrainingError(
            "--strategy lora does not apply to a compressed model: its layers are low-rank already.",
            "Use --strategy lowrank to train the factors (the default for compressed models).",
        )
    if options.gradient_checkpointing:
        # A checkpointed block recomputes from its input, which must require grad for the
        # adapters inside it to get one: the frozen embeddings' output does not, unless told.
        model.enable_input_require_grads()  # type: ignore[operator]
    layers = selected_layers(model, options)
    targets = list(options.lora.targets or family.lora_targets)
    config = LoraConfig(
        task_type=task_type.model.peft_task_type,
        r=options.lora.r,
        lora_alpha=options.lora.alpha,
        lora_dropout=options.lora.dropout,
        target_modules=targets,
        layers_to_transform=layers,
        layers_pattern=family.layers_pattern if layers is not None else None,
        modules_to_save=task_type.model.head_modules(model),
    )
    try:
        return get_peft_model(model, config)
    except ValueError as exc:
        raise TrainingError(
            f"LoRA could not be applied with targets {targets}: {exc}",
            f"Choose --lora-targets among the model's linear layers, e.g. {', '.join(family.lora_targets)}.",
        ) from exc
