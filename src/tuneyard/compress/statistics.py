"""Calibration statistics of each layer's inputs, collected with hooks, memory-bounded.

One forward pass per batch; a forward pre-hook on every layer to compress adds the
batch's contribution to running sums, so memory is ``O(n^2)`` per layer (the Gram
matrix ``X^T X``) whatever the number of tokens, never ``X`` itself. Padding tokens
are left out (the attention mask selects the real ones). Layers that read the same
input tensor (BERT's query / key / value) share one Gram product per batch.

Fisher statistics need the task loss's gradients, so they take a forward and a
backward pass per labelled batch, with gradients enabled only on the layers' weights.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from tuneyard.components.calibration import Batch
from tuneyard.errors import InternalError
from tuneyard.models.logits import takes_logits_to_keep
from tuneyard.models.lowrank import is_conv1d


@dataclass
class LayerStatistics:
    """What the methods know about one layer's inputs ``x`` (rows are tokens)."""

    gram: torch.Tensor | None = None  # sum_t x_t x_t^T, float64 (n, n)
    abs_sum: torch.Tensor | None = None  # sum_t |x_t|, float64 (n,)
    tokens: int = 0
    fisher: torch.Tensor | None = None  # sum over batches and output rows of grad^2, (n,)

    @property
    def abs_mean(self) -> torch.Tensor | None:
        """``mean_t |x_t|`` per input feature."""
        return None if self.abs_sum is None else self.abs_sum / max(self.tokens, 1)


class _InputRecorder:
    """Forward pre-hooks that add each batch's inputs to the layers' statistics.

    Sums accumulate in float32 with ``addmm`` (one fused multiply-add per batch, no
    copies) and become float64 at the end. Layers that receive the same input tensor
    object in a forward pass share one :class:`LayerStatistics` (found on the first
    batch), so query / key / value cost one Gram product, not three.
    """

    def __init__(self, modules: dict[str, nn.Module], gram: bool, abs_mean: bool) -> None:
        self.names = list(modules)
        self.want_gram = gram
        self.want_abs = abs_mean
        self.token_mask: torch.Tensor | None = None
        self.sums: dict[str, list[torch.Tensor | None]] = {}  # owner -> [gram, abs_sum]
        self.tokens: dict[str, int] = {}
        self.owner: dict[str, str] = {}
        # The last input tensor seen and the layer that owns its sums. Holding the
        # reference keeps the tensor alive, so its identity cannot pass to a new one.
        self._last: tuple[torch.Tensor, str] | None = None
        self._handles = [
            module.register_forward_pre_hook(self._hook_for(name)) for name, module in modules.items()
        ]

    def new_batch(self, attention_mask: torch.Tensor | None) -> None:
        self.token_mask = None if attention_mask is None else attention_mask.reshape(-1).bool()
        self._last = None

    def _rows(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, x.shape[-1])
        if self.token_mask is not None and rows.shape[0] == self.token_mask.shape[0]:
            rows = rows[self.token_mask]
        return rows.to(torch.float32)

    def _add(self, owner: str, x: torch.Tensor) -> None:
        rows = self._rows(x.detach())
        gram, abs_sum = self.sums.setdefault(owner, [None, None])
        if self.want_gram:
            gram = rows.T @ rows if gram is None else gram.addmm_(rows.T, rows)
        if self.want_abs:
            batch_abs = rows.abs().sum(0)
            abs_sum = batch_abs if abs_sum is None else abs_sum.add_(batch_abs)
        self.sums[owner] = [gram, abs_sum]
        self.tokens[owner] = self.tokens.get(owner, 0) + rows.shape[0]

    def _hook_for(self, name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...]], None]:
        def hook(module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
            x = inputs[0]
            if self._last is not None and self._last[0] is x:
                self.owner.setdefault(name, self._last[1])
                if self.owner[name] == self._last[1]:
                    return
            owner = self.owner.setdefault(name, name)
            if owner != name:
                raise InternalError(
                    f"{name} shared {owner}'s input on the first batch but not on a later one."
                )
            self._add(owner, x)
            self._last = (x, owner)

        return hook

    def statistics(self) -> dict[str, LayerStatistics]:
        """Per layer name; layers sharing an input share the object."""
        by_owner = {
            owner: LayerStatistics(
                gram=None if gram is None else gram.double(),
                abs_sum=None if abs_sum is None else abs_sum.double(),
                tokens=self.tokens[owner],
            )
            for owner, (gram, abs_sum) in self.sums.items()
        }
        return {name: by_owner[self.owner[name]] for name in self.names if name in self.owner}

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def collect_input_statistics(
    model: nn.Module,
    modules: dict[str, nn.Module],
    batches: Iterable[Batch],
    gram: bool = True,
    abs_mean: bool = False,
    on_batch: Callable[[], None] | None = None,
) -> dict[str, LayerStatistics]:
    """Gram matrices and/or mean |x| of every listed layer's inputs over ``batches``."""
    recorder = _InputRecorder(modules, gram=gram, abs_mean=abs_mean)
    skip_logits = last_logits_only(model)
    try:
        with torch.inference_mode():
            for batch in batches:
                recorder.new_batch(batch.get("attention_mask"))
                model(**{key: value for key, value in batch.items() if key != "labels"}, **skip_logits)
                if on_batch:
                    on_batch()
    finally:
        recorder.remove()
    return recorder.statistics()


def last_logits_only(model: nn.Module) -> dict[str, int]:
    """``{"logits_to_keep": 1}`` where ``model``'s forward takes it (transformers' decoders), else ``{}``.

    The statistics read the layers' inputs, never the output: a decoder's vocabulary
    projection at every position (SmolLM2: 49,152 x 576, a fifth of its forward pass) is
    work thrown away, and transformers' ``logits_to_keep`` keeps it to the last position.
    Other models (encoders, plugins' decoders without it) are called as they are.
    """
    return {"logits_to_keep": 1} if takes_logits_to_keep(model) else {}


def collect_fisher(
    model: nn.Module,
    modules: dict[str, nn.Module],
    batches: Iterable[Batch],
    on_batch: Callable[[], None] | None = None,
) -> dict[str, torch.Tensor]:
    """Per-input-feature Fisher sums: ``f_j = sum_batches sum_i (dL/dW_ij)^2`` for each layer."""
    weights: dict[str, torch.Tensor] = {name: module.weight for name, module in modules.items()}
    previous = {parameter: parameter.requires_grad for parameter in model.parameters()}
    fisher = {name: torch.zeros(_in_features(modules[name]), dtype=torch.float64) for name in modules}
    try:
        for parameter in model.parameters():
            parameter.requires_grad_(False)
        for weight in weights.values():
            weight.requires_grad_(True)
        for batch in batches:
            for weight in weights.values():
                weight.grad = None
            loss = model(**batch).loss
            loss.backward()
            for name, weight in weights.items():
                assert weight.grad is not None
                # Linear stores (out, in); Conv1D stores (in, out): sum over the output side.
                out_dim = 1 if is_conv1d(modules[name]) else 0
                fisher[name] += weight.grad.double().pow(2).sum(out_dim)
            if on_batch:
                on_batch()
    finally:
        for parameter, flag in previous.items():
            parameter.requires_grad_(flag)
            parameter.grad = None
    return fisher


def _in_features(module: nn.Module) -> int:
    weight: torch.Tensor = module.weight
    return int(weight.shape[0] if is_conv1d(module) else weight.shape[1])
