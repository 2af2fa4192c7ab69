"""``frozen``: a linear probe. The base model is fixed; only the classification head trains."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuneyard.components.heads import parameters_under, train_only
from tuneyard.errors import TrainingError

if TYPE_CHECKING:
    from torch import nn

    from tuneyard.models.layout import ModelLayout
    from tuneyard.task_types.base import TaskType
    from tuneyard.train.options import FinetuneOptions

NAME = "frozen"
DEFAULT_LEARNING_RATE = 1e-3  # a fresh head on fixed features wants a large step


def apply(model: nn.Module, options: FinetuneOptions, layout: ModelLayout, task_type: TaskType) -> nn.Module:
    """Freeze the base model, train the head; refuse a model whose head has no weights of its own."""
    head = parameters_under(model, task_type.model.head_modules(model))
    if not head:
        raise TrainingError(
            f"--strategy frozen trains only the task head, and this {type(model).__name__} has none "
            "with weights of its own (a decoder's output layer tied to its embeddings).",
            "Use --strategy lora or full.",
        )
    train_only(model, head)
    return model
