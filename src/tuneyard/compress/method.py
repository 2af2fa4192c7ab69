"""The one small interface every compression method implements.

Every method here minimises a weighted reconstruction error ``||(W - W') S||_F`` for
its own ``S`` (identity, Fisher weights, activation scales, a whitening factor). By
Eckart-Young the best rank-``k`` answer is the truncated SVD of ``W S``, mapped back:

    W S = U Sigma V^T,    W' = U_k Sigma_k V_k^T S^{-1}

so a method only says how to build ``S`` (:meth:`CompressionMethod.weighting`) from the
layer's weight and its calibration statistics; the SVD, the truncation and the
factors are shared (:mod:`tuneyard.compress.factorize`). Factors are stored balanced,
``L = U_k Sigma_k^{1/2}`` and ``R = Sigma_k^{1/2} V_k^T S^{-1}``: the same product as
``(U_k Sigma_k, V_k^T S^{-1})``, with factors of equal scale, which fine-tuning
both factors with one learning rate prefers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from tuneyard.compress.statistics import LayerStatistics


@dataclass
class Weighting:
    """``S``: None (the identity), a vector (a diagonal) or a lower-triangular matrix.

    ``S^{-1}`` is never formed: a diagonal divides, a triangular ``S`` is solved
    against (``k n^2`` work for a rank-``k`` factor instead of ``n^3`` for an inverse).
    """

    scale: torch.Tensor | None = None

    def apply(self, weight: torch.Tensor) -> torch.Tensor:
        """``W S`` for a ``(out, in)`` weight."""
        if self.scale is None:
            return weight
        return weight * self.scale if self.scale.dim() == 1 else weight @ self.scale

    def undo(self, right: torch.Tensor) -> torch.Tensor:
        """``R S^{-1}``: the right factor back in the layer's input space."""
        if self.scale is None:
            return right
        if self.scale.dim() == 1:
            return right / self.scale
        return torch.linalg.solve_triangular(self.scale, right, upper=False, left=False)

    def to(self, dtype: torch.dtype) -> Weighting:
        """The same weighting in ``dtype``."""
        return Weighting(None if self.scale is None else self.scale.to(dtype))


class CompressionMethod:
    """Base of the methods: which statistics they need and how they weight ``W``."""

    name: ClassVar[str]
    summary: ClassVar[str]
    # Calibration statistics the method reads: "gram" (X^T X), "abs_mean" (mean |x|), "fisher".
    statistics: ClassVar[frozenset[str]] = frozenset()
    needs_labels: ClassVar[bool] = False
    # True when the method picks per-layer ranks itself under a global budget.
    allocates_ranks: ClassVar[bool] = False
    # True when S depends on the layer's input statistics only, so layers reading the
    # same input (query / key / value) share one S.
    weighting_from_inputs: ClassVar[bool] = False

    def weighting(self, weight: torch.Tensor, stats: LayerStatistics | None) -> Weighting:
        """``S`` for this layer (float64 tensors on the weight's device)."""
        raise NotImplementedError

    def options(self) -> dict[str, object]:
        """The method's own settings, recorded in ``compression_info.json``."""
        return {}

    @property
    def needs_calibration(self) -> bool:
        """True when the method reads calibration data."""
        return bool(self.statistics)


def positive_floor(values: torch.Tensor, relative: float = 1e-6) -> torch.Tensor:
    """``values`` with entries below ``relative * mean`` raised to it, so ``1 / S`` stays finite.

    An input feature never seen active (a zero activation scale or Fisher weight)
    would otherwise make the un-weighting divide by zero.
    """
    floor = values.mean().clamp_min(torch.finfo(values.dtype).tiny) * relative
    return values.clamp_min(floor)
