"""``fwsvd``: Fisher-weighted SVD (Hsu et al., "Language model compression with weighted
low-rank factorization", ICLR 2022).

The loss increase from perturbing ``W`` is approximated by the diagonal Fisher
information, ``dL ~ sum_ij F_ij (W - W')_ij^2`` with ``F_ij`` the squared gradient of the
task loss summed over labelled calibration batches. FWSVD ties the importance of all
weights that read the same input feature ``j``: ``f_j = sum_i F_ij``. With
``D = diag(sqrt(f_j))``

    sum_ij f_j (W - W')_ij^2 = ||(W - W') D||_F^2

so the truncated SVD of ``W D``, un-weighted by ``D^{-1}``, minimises that Fisher-weighted
error exactly. The weight is the **square root** of the summed Fisher, because the
Frobenius norm squares it back. Features whose Fisher sum is (near) zero get a small
floor so ``D^{-1}`` is finite.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from tuneyard.compress.method import CompressionMethod, Weighting, positive_floor
from tuneyard.compress.statistics import LayerStatistics


class FisherWeightedSVD(CompressionMethod):
    """SVD of ``W diag(sqrt(f))`` with per-input-feature Fisher sums ``f``."""

    name: ClassVar[str] = "fwsvd"
    summary: ClassVar[str] = "Fisher-weighted SVD (needs labelled calibration data)"
    statistics: ClassVar[frozenset[str]] = frozenset({"fisher"})
    needs_labels: ClassVar[bool] = True

    def weighting(self, weight: torch.Tensor, stats: LayerStatistics | None) -> Weighting:
        assert stats is not None and stats.fisher is not None, "fwsvd needs Fisher statistics"
        scale = positive_floor(stats.fisher.to(torch.float64)).sqrt()
        return Weighting(scale=scale)
