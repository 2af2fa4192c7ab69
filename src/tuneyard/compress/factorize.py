"""The shared half of every method: weighted SVD, truncation, balanced factors.

SVDs of layers whose weighted matrices have the same shape run as one batched
``torch.linalg.svd`` call; a layer's spectrum is kept so rank allocation (adasvd) and
the factors reuse one decomposition.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tuneyard.compress.method import CompressionMethod, Weighting
from tuneyard.compress.statistics import LayerStatistics


@dataclass
class WeightedSVD:
    """``W S = U diag(sigma) V^T`` for one layer, and the ``S`` it was taken with."""

    u: torch.Tensor
    sigma: torch.Tensor
    vh: torch.Tensor
    weighting: Weighting

    def factors(self, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Balanced rank-``rank`` factors ``(U_k Sigma_k^1/2, Sigma_k^1/2 V_k^T S^-1)``."""
        root = self.sigma[:rank].sqrt()
        left = self.u[:, :rank] * root
        right = self.weighting.undo(root[:, None] * self.vh[:rank])
        return left, right


def svd_dtype(method: CompressionMethod) -> torch.dtype:
    """float64 when ``S`` is a full matrix (whitening can be ill-conditioned), else float32."""
    return torch.float64 if "gram" in method.statistics else torch.float32


def weighted_svds(
    method: CompressionMethod,
    weights: dict[str, torch.Tensor],
    statistics: dict[str, LayerStatistics],
    on_layer: Callable[[], None] | None = None,
) -> dict[str, WeightedSVD]:
    """The weighted SVD of every ``(out, in)`` weight, batched over equal shapes."""
    dtype = svd_dtype(method)
    weightings: dict[str, Weighting] = {}
    weighted: dict[str, torch.Tensor] = {}
    for name, weight in weights.items():
        weighting = method.weighting(weight, statistics.get(name))
        weightings[name] = Weighting(
            None if weighting.scale is None else weighting.scale.to(dtype),
            None if weighting.inverse is None else weighting.inverse.to(dtype),
        )
        weighted[name] = weightings[name].apply(weight.detach().to(dtype))
    groups: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for name, matrix in weighted.items():
        groups[tuple(matrix.shape)].append(name)
    result: dict[str, WeightedSVD] = {}
    for names in groups.values():
        u, sigma, vh = torch.linalg.svd(torch.stack([weighted[name] for name in names]), full_matrices=False)
        for index, name in enumerate(names):
            result[name] = WeightedSVD(u[index], sigma[index], vh[index], weightings[name])
            if on_layer:
                on_layer()
    return result
