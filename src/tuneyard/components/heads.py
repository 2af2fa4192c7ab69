"""Task heads: the modules a ``...For{Task}`` model adds to its base, and training only some weights.

Found from the model itself rather than a per-family list: every top-level child
except the base model (``model.base_model_prefix``: ``bert``, ``transformer``,
``model`` ...) is head. That covers BERT's ``classifier``, RoBERTa's two-layer
``classifier``, ModernBERT's ``head`` + ``classifier`` and GPT-2 / LLaMA's ``score``.
A task type decides whether that rule is its head (a classifier's is; a model whose
top-level children include a projector, as Whisper's classifier does, says its own).
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


def parameters_under(model: nn.Module, modules: list[str]) -> set[str]:
    """Full parameter names under the top-level ``modules``."""
    prefixes = tuple(f"{name}." for name in modules)
    return {name for name, _ in model.named_parameters() if name.startswith(prefixes)}
