"""The low-rank layer every compression method produces, and how it goes into a model.

A compressed model is the *same* Hugging Face model class with chosen linear layers
(``nn.Linear``, or GPT-2's ``Conv1D``) replaced by :class:`LowRankLinear`, which holds
two plain ``nn.Parameter`` factors. Keeping the model class means tokenizers, heads,
``generate`` and the Trainer keep working; plain parameters used through
``F.linear`` mean every factor gets gradients when the model is fine-tuned.

Two thin products are only faster than one dense product while the rank is well below
break-even: on MiniLM's layers (batch 32 x 128, CPU) factors holding 90% of the dense
weights ran at 1.0-1.25x the dense time. Such a layer therefore multiplies by
``left @ right`` in one product when no gradient is recorded (evaluation, generation),
keeping that product cached until a factor changes; training always goes through the
factors.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

from tuneyard.errors import ModelError

if TYPE_CHECKING:
    from tuneyard.models.layout import ModelLayout

# Factors holding at least this fraction of the dense layer's weights run as one dense
# product at inference (measured crossover, see the module docstring).
DENSE_FASTER_FRACTION = 0.9


class LowRankLinear(nn.Module):
    """``y = x R^T L^T + b``: a linear layer whose weight is stored as ``L @ R``.

    ``left`` is ``(out_features, rank)``, ``right`` is ``(rank, in_features)``. The
    layer costs ``rank * (in + out)`` weights instead of ``in * out``, and two thin
    matrix products instead of one square one.
    """

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.rank = rank
        self.left = nn.Parameter(torch.empty(out_features, rank))
        self.right = nn.Parameter(torch.empty(rank, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self._dense_cache: tuple[tuple[object, ...], torch.Tensor] | None = None
        nn.init.normal_(self.left, std=rank**-0.5)
        nn.init.normal_(self.right, std=in_features**-0.5)

    @classmethod
    def from_factors(
        cls, left: torch.Tensor, right: torch.Tensor, bias: torch.Tensor | None = None
    ) -> LowRankLinear:
        """A layer holding copies of the given factors (and bias), in their dtype."""
        out_features, rank = left.shape
        if right.shape[0] != rank:
            raise ValueError(f"factor shapes {tuple(left.shape)} and {tuple(right.shape)} do not chain.")
        layer = cls(right.shape[1], out_features, rank, bias=bias is not None)
        with torch.no_grad():
            layer.left.data = left.detach().clone().contiguous()
            layer.right.data = right.detach().clone().contiguous()
            if bias is not None and layer.bias is not None:
                layer.bias.data = bias.detach().clone().contiguous()
        return layer

    @property
    def runs_dense(self) -> bool:
        """Whether inference uses one cached ``left @ right`` product (rank near break-even)."""
        factor_weights = self.rank * (self.in_features + self.out_features)
        return factor_weights >= DENSE_FASTER_FRACTION * self.in_features * self.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.runs_dense and not torch.is_grad_enabled():
            return F.linear(x, self._inference_weight(), self.bias)
        return F.linear(F.linear(x, self.right), self.left, self.bias)

    def _inference_weight(self) -> torch.Tensor:
        """``left @ right``, recomputed only when a factor was replaced or changed in place."""
        key = (
            self.left.data_ptr(),
            self.left._version,
            self.right.data_ptr(),
            self.right._version,
            self.left.dtype,
            self.left.device,
        )
        if self._dense_cache is None or self._dense_cache[0] != key:
            self._dense_cache = (key, self.dense_weight().detach())
        return self._dense_cache[1]

    def dense_weight(self) -> torch.Tensor:
        """The ``(out, in)`` weight this layer applies, ``left @ right``."""
        return self.left @ self.right

    def num_weights(self) -> int:
        """Number of stored weights, bias included."""
        return sum(parameter.numel() for parameter in self.parameters())

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, bias={self.bias is not None}"
        )


def is_conv1d(module: nn.Module) -> bool:
    """GPT-2's ``Conv1D`` (a linear layer with its weight stored as ``(in, out)``)."""
    return type(module).__name__ == "Conv1D" and hasattr(module, "nf")


def is_linear(module: nn.Module) -> bool:
    """A layer SVD can factorise: ``nn.Linear`` or GPT-2's ``Conv1D``."""
    return isinstance(module, nn.Linear) or is_conv1d(module)


def linear_weight(module: nn.Module) -> torch.Tensor:
    """The layer's weight as ``(out, in)``, whatever layout the module stores."""
    if isinstance(module, LowRankLinear):
        return module.dense_weight()
    if is_conv1d(module):
        weight: torch.Tensor = module.weight
        return weight.t()
    if isinstance(module, nn.Linear):
        return module.weight
    raise TypeError(f"{type(module).__name__} is not a linear layer.")


def linear_bias(module: nn.Module) -> torch.Tensor | None:
    """The layer's bias, or None."""
    bias = getattr(module, "bias", None)
    return bias if isinstance(bias, torch.Tensor) else None


def compressible_modules(model: nn.Module, layout: ModelLayout) -> dict[str, nn.Module]:
    """``{module name: layer}`` for every linear layer of the model's blocks (SVD may factorise them).

    Only layers inside the numbered blocks count, so a classifier head's ``dense`` stays dense.
    """
    return {
        name: module
        for name, module in model.named_modules()
        if is_linear(module) and layout.module_type(name) is not None
    }


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the submodule ``name`` is."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    if not hasattr(parent, child):
        raise ModelError(f"the model has no module {name!r}.")
    setattr(parent, child, new)


def install_empty_lowrank(model: nn.Module, ranks: dict[str, int]) -> None:
    """Replace each named layer with an uninitialised :class:`LowRankLinear` of its rank.

    Used when loading a compressed folder: the shapes come from the model's config,
    the ranks from ``compression_info.json``, the values from ``model.safetensors``.
    """
    for name, rank in ranks.items():
        try:
            module = model.get_submodule(name)
        except AttributeError as exc:
            raise ModelError(
                f"compression_info.json lists layer {name!r}, which this model does not have."
            ) from exc
        weight = linear_weight(module)
        out_features, in_features = weight.shape
        layer = LowRankLinear(in_features, out_features, rank, bias=linear_bias(module) is not None)
        replace_module(model, name, layer.to(dtype=weight.dtype))


def lowrank_layers(model: nn.Module) -> Iterator[tuple[str, LowRankLinear]]:
    """Every :class:`LowRankLinear` in ``model`` with its name."""
    for name, module in model.named_modules():
        if isinstance(module, LowRankLinear):
            yield name, module


def restore_dense(model: nn.Module) -> int:
    """Replace every :class:`LowRankLinear` with the dense layer its class had there; returns how many.

    The layer type comes from the model class itself (a skeleton built on the meta
    device, no memory): ``nn.Linear``, or GPT-2's ``Conv1D`` with its ``(in, out)``
    weight, so the model saves and loads as the plain transformers class. The weight is
    ``left @ right`` in the factors' dtype; the bias is kept.
    """
    with torch.device("meta"):
        skeleton = type(model)(model.config)
    layers = list(lowrank_layers(model))
    for name, layer in layers:
        weight = layer.dense_weight().detach()
        original = skeleton.get_submodule(name)
        dense: nn.Module
        if is_conv1d(original):
            dense = type(original)(layer.out_features, layer.in_features)
            dense.weight = nn.Parameter(weight.T.contiguous())
        else:
            dense = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
            dense.weight = nn.Parameter(weight.contiguous())
        if layer.bias is not None:
            dense.bias = nn.Parameter(layer.bias.detach().clone())
        elif getattr(dense, "bias", None) is not None:
            dense.bias = nn.Parameter(torch.zeros(layer.out_features, dtype=weight.dtype))
        replace_module(model, name, dense.to(weight.device))
    return len(layers)
