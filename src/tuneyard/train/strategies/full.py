"""``full``: every weight of the model trains."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

    from tuneyard.models.layout import ModelLayout
    from tuneyard.task_types.base import TaskType
    from tuneyard.train.options import FinetuneOptions

NAME = "full"
DEFAULT_LEARNING_RATE = 2e-5


def apply(model: nn.Module, options: FinetuneOptions, layout: ModelLayout, task_type: TaskType) -> nn.Module:
    """Unfreeze everything."""
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model
