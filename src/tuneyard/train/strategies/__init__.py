"""Fine-tuning strategies: which weights train. One small module per strategy.

Every strategy module has the same shape: ``NAME``, ``DEFAULT_LEARNING_RATE`` (the
rate that strategy usually wants; ``--learning-rate`` overrides it) and
``apply(model, options, layout, task_type) -> model``, which freezes / wraps the model
and returns what the Trainer should train. A strategy whose base loads quantized
(``qlora``) also has ``quantization_config()``, which the recipe passes to the model's
load, and ``check_machine()``, which the plan calls before anything loads. The modules
import torch only inside their functions, so the CLI reads this table (names, default
rates) without loading it.
"""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING

from tuneyard.errors import TrainingError
from tuneyard.train.strategies import adapter, frozen, full, lora, lowrank, qlora

if TYPE_CHECKING:
    from torch import nn

STRATEGIES: dict[str, ModuleType] = {
    module.NAME: module for module in (full, frozen, lora, qlora, lowrank, adapter)
}


def default_rates() -> str:
    """``full 2e-05, frozen 0.001, ...``: each strategy's default learning rate, for help texts."""
    return ", ".join(f"{name} {module.DEFAULT_LEARNING_RATE:g}" for name, module in STRATEGIES.items())


def strategy_for(name: str | None, compressed: bool) -> ModuleType:
    """The strategy module for ``--strategy`` (default: ``lowrank`` for compressed models, else ``full``)."""
    chosen = name or ("lowrank" if compressed else "full")
    if chosen not in STRATEGIES:
        raise TrainingError(f"unknown strategy {chosen!r}.", f"Choose one of: {', '.join(STRATEGIES)}.")
    return STRATEGIES[chosen]


def parameter_counts(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts, shared tensors counted once."""
    seen: set[int] = set()
    trainable = total = 0
    for parameter in model.parameters():
        if id(parameter) in seen:
            continue
        seen.add(id(parameter))
        total += parameter.numel()
        trainable += parameter.numel() if parameter.requires_grad else 0
    return trainable, total
