"""The shared half of every method: weighted SVD, truncation, balanced factors.

The SVD of ``A = W S`` (``m x n``) is taken through the symmetric eigenproblem of its
smaller Gram matrix, ``A^T A = V Sigma^2 V^T`` (or ``A A^T = U Sigma^2 U^T`` when
``m < n``): the eigensolver is about twice as fast as an SVD at these sizes. Methods
with a full whitening matrix run in float64, which keeps the squared spectrum accurate
down to ``1e-8 sigma_max``; diagonal weightings (standard, asvd, fwsvd) run in float32,
accurate down to ``~3e-4 sigma_max``, below any rank worth keeping. Either way the
bases are orthonormal to working precision, so a full-rank factorisation reproduces
``W``. Eigenproblems of equal size run as one batched
call; layers that read the same input share one ``S`` when the method allows it; a
layer's spectrum is kept so rank allocation (adasvd) and the factors reuse it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass

import torch

from tuneyard.compress.method import CompressionMethod, Weighting
from tuneyard.compress.statistics import LayerStatistics


def svd_dtype(method: CompressionMethod) -> torch.dtype:
    """float64 when ``S`` is a full matrix (whitening can be ill-conditioned), else float32."""
    return torch.float64 if "gram" in method.statistics else torch.float32


@dataclass
class WeightedSVD:
    """``A = W S = U diag(sigma) V^T`` for one layer, kept as ``A``, ``sigma`` and one basis."""

    weighted: torch.Tensor  # A, (m, n)
    sigma: torch.Tensor  # descending, length min(m, n)
    basis: torch.Tensor  # V (n, r) when n <= m, else U (m, r)
    weighting: Weighting

    def factors(self, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Balanced rank-``rank`` factors ``(U_k Sigma_k^1/2, Sigma_k^1/2 V_k^T S^-1)``."""
        floor = (
            self.sigma[0].clamp_min(torch.finfo(self.sigma.dtype).tiny) * torch.finfo(self.sigma.dtype).eps
        )
        root = self.sigma[:rank].clamp_min(floor).sqrt()
        basis = self.basis[:, :rank]
        if self.basis.shape[0] == self.weighted.shape[1]:  # basis is V
            left, right = (self.weighted @ basis) / root, root[:, None] * basis.T
        else:  # basis is U
            left, right = basis * root, (basis.T @ self.weighted) / root[:, None]
        return left, self.weighting.undo(right)


def _weightings(
    method: CompressionMethod, weights: dict[str, torch.Tensor], statistics: dict[str, LayerStatistics]
) -> dict[str, Weighting]:
    dtype = svd_dtype(method)
    shared: dict[int, Weighting] = {}
    result = {}
    for name, weight in weights.items():
        stats = statistics.get(name)
        key = id(stats)
        if method.weighting_from_inputs and stats is not None and key in shared:
            result[name] = shared[key]
            continue
        result[name] = shared[key] = method.weighting(weight, stats).to(dtype)
    return result


def weighted_svds(
    method: CompressionMethod,
    weights: dict[str, torch.Tensor],
    statistics: dict[str, LayerStatistics],
    on_layer: Callable[[], None] | None = None,
) -> dict[str, WeightedSVD]:
    """The weighted SVD of every ``(out, in)`` weight."""
    weightings = _weightings(method, weights, statistics)
    dtype = svd_dtype(method)
    weighted = {name: weightings[name].apply(weight.detach().to(dtype)) for name, weight in weights.items()}
    groups: dict[int, list[str]] = defaultdict(list)
    for name, matrix in weighted.items():
        groups[min(matrix.shape)].append(name)
    result: dict[str, WeightedSVD] = {}
    for names in groups.values():
        grams = [a.T @ a if a.shape[1] <= a.shape[0] else a @ a.T for a in (weighted[name] for name in names)]
        eigenvalues, eigenvectors = torch.linalg.eigh(torch.stack(grams))
        for index, name in enumerate(names):
            # eigh sorts ascending; singular values descend.
            sigma = eigenvalues[index].flip(0).clamp_min(0).sqrt()
            basis = eigenvectors[index].flip(1)
            result[name] = WeightedSVD(weighted[name], sigma, basis, weightings[name])
            if on_layer:
                on_layer()
    return result
