"""A model's layout, read from the model itself: its repeated blocks and their linear layers.

What the old family table listed by hand for five architectures is derived here for any
model transformers builds: the stack of identical blocks (the ``ModuleList`` PEFT's
``layers_to_transform`` numbers), every linear layer inside a block (what ``compress``
may factorise and what LoRA adapts by default), and whether a layer belongs to the
block's attention or to its MLP (``--rank attn=..,ffn=..``, ``--lora-targets attn``).

A layer is *attention* when a module above it inside the block is an attention module
(its class name says ``Attention``: ``LlamaAttention``, ``BertAttention`` with its output
projection, DistilBERT's ``MultiHeadSelfAttention``, GPT-2's fused ``c_attn``...), else
*MLP*. Names are relative to a block (``self_attn.q_proj``), so a classifier's
``pooler.dense`` is never mistaken for a block's ``output.dense``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from tuneyard.errors import ModelError

if TYPE_CHECKING:
    from torch import nn

# Config model types filed under another architecture name.
MODEL_TYPE_TO_ARCH = {"idefics3": "smolvlm", "smolvlm": "smolvlm"}
ATTENTION, MLP = "attn", "ffn"  # a block layer's type (compress's --rank attn=..,ffn=..)
LAYER_KINDS = (ATTENTION, "mlp", "all-linear")  # words --lora-targets takes for kinds of block layers
# The config field that makes transformers build a bottleneck adapter into each encoder layer that has a slot
# for one (Wav2Vec2/HuBERT with stable layer norm; --strategy adapter sets it, merge refuses what it built).
ATTENTION_ADAPTER_DIM = "adapter_attn_dim"
# PEFT wraps a target layer: its base layer and adapter matrices are not block layers of their own.
_ADAPTER_PARTS = re.compile(r"(?:^|\.)(?:base_layer|lora_[A-Za-z_]+|modules_to_save|original_module)(?:\.|$)")


def arch_of(model_type: str) -> str:
    """The architecture name a model is filed under (its config's ``model_type``)."""
    return MODEL_TYPE_TO_ARCH.get(model_type, model_type)


@dataclass(frozen=True)
class ModelLayout:
    """Where a model's blocks are and what linear layers each holds."""

    arch: str
    blocks: str  # the block list's module path, e.g. "model.layers"
    num_blocks: int
    attention: tuple[str, ...]  # linear layers inside a block, relative names ("self_attn.q_proj")
    ffn: tuple[str, ...]

    @property
    def layers_pattern(self) -> str:
        """The block list's own name (``layers``, ``layer``, ``h``): PEFT's ``layers_pattern``."""
        return self.blocks.rpartition(".")[2]

    @property
    def compressible(self) -> tuple[str, ...]:
        """Every linear layer of a block (relative names), attention first."""
        return self.attention + self.ffn

    def targets(self, kind: str) -> tuple[str, ...]:
        """Linear layers of one of :data:`LAYER_KINDS`: ``attn``, ``mlp`` or ``all-linear``."""
        return {ATTENTION: self.attention, "mlp": self.ffn, "all-linear": self.compressible}[kind]

    @cached_property
    def _block_member(self) -> re.Pattern[str]:
        return re.compile(rf"(?:^|\.){re.escape(self.blocks)}\.(\d+)\.(.+)$")

    def layer_number(self, module_name: str) -> int | None:
        """The block a module belongs to, or None (embeddings, head)."""
        match = self._block_member.search(module_name)
        return int(match.group(1)) if match else None

    def relative_name(self, module_name: str) -> str | None:
        """A module's name inside its block (``self_attn.q_proj``), or None outside the blocks."""
        match = self._block_member.search(module_name)
        return match.group(2) if match else None

    def module_type(self, module_name: str) -> str | None:
        """``attn`` or ``ffn`` for a block's linear layer, else None."""
        relative = self.relative_name(module_name)
        if relative in self.attention:
            return ATTENTION
        if relative in self.ffn:
            return MLP
        return None


def layout_of(model: nn.Module) -> ModelLayout:
    """Derive ``model``'s layout; a model without a stack of blocks holding linear layers is refused."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    found = _block_list(inner)
    if found is None:
        raise ModelError(
            f"{type(inner).__name__} has no stack of identical blocks with linear layers, "
            "which tuneyard's LoRA, layer selection and compression work on.",
            "Use a transformer model (a checkpoint transformers loads with an AutoModel class).",
        )
    path, blocks = found
    attention, ffn = _linear_layers(blocks[0])
    model_type = getattr(getattr(inner, "config", None), "model_type", type(inner).__name__)
    return ModelLayout(arch_of(model_type), path, len(blocks), attention, ffn)


def layout_of_config(config: object) -> ModelLayout:
    """The layout of the model a config describes, built on the meta device (no memory, no weights)."""
    import torch
    from transformers import AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(config)
    return layout_of(model)


def _block_list(model: nn.Module) -> tuple[str, nn.ModuleList] | None:
    """The largest ``ModuleList`` of same-class blocks that hold linear layers (the transformer stack)."""
    from torch import nn

    best: tuple[int, str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or len(module) == 0 or _ADAPTER_PARTS.search(name):
            continue
        if len({type(block) for block in module}) != 1 or not any(_linear_layers(module[0])):
            continue
        size = sum(parameter.numel() for parameter in module.parameters())
        if best is None or size > best[0]:
            best = (size, name, module)
    return (best[1], best[2]) if best else None


def _linear_layers(block: nn.Module) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A block's linear layers as (attention, MLP) relative names, in module order."""
    from tuneyard.models.lowrank import LowRankLinear, is_linear

    attention: list[str] = []
    ffn: list[str] = []
    for name, module in block.named_modules():
        if not name or _ADAPTER_PARTS.search(name):
            continue
        if not (is_linear(module) or isinstance(module, LowRankLinear) or hasattr(module, "base_layer")):
            continue
        (attention if _under_attention(block, name) else ffn).append(name)
    return tuple(attention), tuple(ffn)


def _under_attention(block: nn.Module, name: str) -> bool:
    """Whether a module above ``name`` inside ``block`` is an attention module."""
    parts = name.split(".")
    return any(
        "attention" in type(block.get_submodule(".".join(parts[:depth]))).__name__.lower()
        for depth in range(1, len(parts))
    )
