"""``whiten``: data-whitened SVD (DRONE, Chen et al. 2021; SVD-LLM, Wang et al. 2024).

What matters is the layer's output on real inputs. With the calibration inputs as the
columns of ``X`` (one per token), the output error of ``W'`` is

    ||(W - W') X||_F^2 = tr((W - W') X X^T (W - W')^T) = ||(W - W') S||_F^2

for any ``S`` with ``S S^T = X X^T`` (accumulated as the ``n x n`` Gram matrix, never
``X`` itself). ``S`` is the lower Cholesky factor; when the Gram matrix is not positive
definite (a dead feature, fewer tokens than features) a jitter ``eps * mean(diag) * I``
is added, ``eps`` growing from 1e-8 until the factorisation succeeds. The truncated SVD
of ``W S = U Sigma V^T`` gives ``W' = U_k Sigma_k V_k^T S^{-1}``, and then

    ||(W - W') X||_F^2 = sum_{i > k} sigma_i^2

exactly (up to the jitter): the output error on the calibration inputs is the energy of
the discarded singular values of ``W S``.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from tuneyard.compress.method import CompressionMethod, Weighting
from tuneyard.compress.statistics import LayerStatistics
from tuneyard.errors import CompressionError

JITTERS = (0.0, 1e-8, 1e-6, 1e-4, 1e-2)


def cholesky_with_jitter(gram: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Lower Cholesky factor of ``gram`` (float64) and the relative jitter it needed."""
    gram = gram.to(torch.float64)
    gram = (gram + gram.T) / 2
    scale = gram.diagonal().mean().clamp_min(torch.finfo(torch.float64).tiny)
    identity = torch.eye(gram.shape[0], dtype=gram.dtype, device=gram.device)
    for jitter in JITTERS:
        factor, info = torch.linalg.cholesky_ex(gram + jitter * scale * identity)
        if int(info) == 0:
            return factor, jitter
    raise CompressionError(
        "the calibration inputs' X^T X is too ill-conditioned to whiten even with jitter 1e-2.",
        "Use more calibration samples (--calib-samples) or the asvd / standard method.",
    )


class WhitenedSVD(CompressionMethod):
    """SVD of ``W S`` with ``S S^T = X X^T`` (Cholesky of the calibration Gram matrix)."""

    name: ClassVar[str] = "whiten"
    summary: ClassVar[str] = "data-whitened SVD, DRONE / SVD-LLM (needs calibration data)"
    statistics: ClassVar[frozenset[str]] = frozenset({"gram"})
    weighting_from_inputs: ClassVar[bool] = True

    def weighting(self, weight: torch.Tensor, stats: LayerStatistics | None) -> Weighting:
        assert stats is not None and stats.gram is not None, "whiten needs the Gram matrix"
        factor, _ = cholesky_with_jitter(stats.gram)
        return Weighting(scale=factor)
