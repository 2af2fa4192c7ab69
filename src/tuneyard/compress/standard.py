"""``standard``: truncated SVD of the weight itself.

``W = U Sigma V^T``; keep the ``k`` largest singular values. ``S = I``, so this is the
best rank-``k`` approximation in the plain Frobenius norm ``||W - W'||_F`` (Eckart-Young),
which treats every input direction as equally important. Needs no data.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from tuneyard.compress.method import CompressionMethod, Weighting
from tuneyard.compress.statistics import LayerStatistics


class StandardSVD(CompressionMethod):
    """Truncated SVD of ``W``."""

    name: ClassVar[str] = "standard"
    summary: ClassVar[str] = "truncated SVD of the weight (no data)"

    def weighting(self, weight: torch.Tensor, stats: LayerStatistics | None) -> Weighting:
        return Weighting()
