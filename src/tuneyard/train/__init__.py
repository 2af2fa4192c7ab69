"""Fine-tuning on the Hugging Face Trainer: plans, strategies, the run's recorder and callbacks.

:func:`tuneyard.train.recipe.finetune` is the one call; :mod:`tuneyard.train.plan`
decides what a run is, :mod:`tuneyard.train.recipe` loads and trains it, and
:mod:`tuneyard.train.recorder` files it in the yard as it trains. Names load lazily,
so the CLI can read the strategy table without pydantic or torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuneyard.train.options import FinetuneOptions as FinetuneOptions
    from tuneyard.train.options import LoraOptions as LoraOptions
    from tuneyard.train.recipe import finetune as finetune

_HOMES = {"FinetuneOptions": "options", "LoraOptions": "options", "finetune": "recipe"}

__all__ = ["FinetuneOptions", "LoraOptions", "finetune"]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"tuneyard.train.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'tuneyard.train' has no attribute {name!r}")
