"""``asvd``: activation-aware SVD (Yuan et al., "ASVD", 2023).

Input channels that carry large activations matter more. With ``s_j = mean_t |x_tj|``
over the calibration tokens and ``S = diag(s^alpha)`` (``alpha`` = 0.5 by default,
``--alpha``), take the truncated SVD of ``W S`` and un-scale the right factor by
``S^{-1}``. ``alpha = 0`` is plain SVD; larger ``alpha`` trusts the activations more.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from tuneyard.compress.method import CompressionMethod, Weighting, positive_floor
from tuneyard.compress.statistics import LayerStatistics


class ActivationAwareSVD(CompressionMethod):
    """SVD of ``W diag(mean|x|^alpha)``."""

    name: ClassVar[str] = "asvd"
    summary: ClassVar[str] = "activation-aware SVD, scales input channels by mean|x|^alpha"
    statistics: ClassVar[frozenset[str]] = frozenset({"abs_mean"})
    weighting_from_inputs: ClassVar[bool] = True

    def __init__(self, alpha: float = 0.5) -> None:
        self.alpha = alpha

    def weighting(self, weight: torch.Tensor, stats: LayerStatistics | None) -> Weighting:
        assert stats is not None and stats.abs_mean is not None, "asvd needs mean |x|"
        scale = positive_floor(stats.abs_mean.to(torch.float64)).pow(self.alpha)
        return Weighting(scale=scale)

    def options(self) -> dict[str, object]:
        return {"alpha": self.alpha}
