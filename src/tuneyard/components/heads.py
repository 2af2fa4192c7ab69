"""The classification head: the modules a ``...ForSequenceClassification`` adds to its base.

Found from the model itself rather than a per-family list: every top-level child
except the base model (``model.base_model_prefix``: ``bert``, ``transformer``,
``model`` ...) is head. That covers BERT's ``classifier``, RoBERTa's two-layer
``classifier``, ModernBERT's ``head`` + ``classifier`` and GPT-2 / LLaMA's ``score``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


def head_module_names(model: nn.Module) -> list[str]:
    """Names of the top-level head modules that hold parameters."""
    prefix = getattr(model, "base_model_prefix", "")
    return [
        name
        for name, child in model.named_children()
        if name != prefix and any(True for _ in child.parameters())
    ]


def train_only(model: nn.Module, trainable: set[str]) -> None:
    """Let exactly the parameters named in ``trainable`` receive gradients."""
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(name in trainable)


def head_parameter_names(model: nn.Module) -> set[str]:
    """Full parameter names under the head modules."""
    heads = tuple(f"{name}." for name in head_module_names(model))
    return {name for name, _ in model.named_parameters() if name.startswith(heads)}
