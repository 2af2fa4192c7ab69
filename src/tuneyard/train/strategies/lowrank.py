"""``lowrank``: fine-tune a compressed model's low-rank factors (and its task head).

Every :class:`~tuneyard.models.lowrank.LowRankLinear` factor is a plain parameter
used through ``F.linear``, so each one gets a gradient. The head trained beside them is
the task type's (a classifier's head; a language model has none: its output layer is
pretrained and often tied to the embeddings). ``--freeze-factors`` flips
the choice: the factors stay as compression left them and everything else trains
(embeddings, norms, biases, the head), to repair the model around fixed factors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tuneyard.components.heads import parameters_under, train_only
from tuneyard.errors import TrainingError

if TYPE_CHECKING:
    from torch import nn

    from tuneyard.models.layout import ModelLayout
    from tuneyard.task_types.base import TaskType
    from tuneyard.train.options import FinetuneOptions

NAME = "lowrank"
DEFAULT_LEARNING_RATE = 3e-5


def factor_parameter_names(model: nn.Module) -> set[str]:
    """Full names of every low-rank factor (``<layer>.left`` / ``<layer>.right``)."""
    from tuneyard.models.lowrank import lowrank_layers

    return {f"{name}.{factor}" for name, _ in lowrank_layers(model) for factor in ("left", "right")}


def apply(model: nn.Module, options: FinetuneOptions, layout: ModelLayout, task_type: TaskType) -> nn.Module:
    """Train the factors and the head, or (``--freeze-factors``) all but the factors."""
    factors = factor_parameter_names(model)
    if not factors:
        raise TrainingError(
            "--strategy lowrank needs a compressed model, but the checkpoint has no low-rank layers.",
            "Compress it first with `tuneyard compress`, or use --strategy full / frozen / lora.",
        )
    every = {name for name, _ in model.named_parameters()}
    trained = factors | parameters_under(model, task_type.model.head_modules(model))
    train_only(model, every - factors if options.freeze_factors else trained)
    return model
