"""``adasvd``: whitened SVD with per-layer ranks chosen under one global budget.

Sensitivity is measured on the calibration data: after whitening (see
:mod:`tuneyard.compress.whiten`), keeping ``k`` singular values of layer ``l`` leaves
a relative output error ``e_l(k) = sum_{i>k} sigma_{l,i}^2 / sum_i sigma_{l,i}^2``. Each
extra rank of layer ``l`` costs ``m_l + n_l`` weights and removes
``sigma_{l,k}^2 / sum_i sigma_{l,i}^2`` of its error. Ranks are handed out greedily,
largest error removed per weight first, starting from rank 1 everywhere, until the
next one would exceed the budget; because each layer's gains fall as ``k`` grows, the
greedy order takes every layer's ranks in order and solves the budgeted problem for
the summed relative errors. The budget is ``ratio x`` the compressible weights
(``--ratio``), or what the same ``--rank`` everywhere would cost (``--rank``). No layer
reaches its break-even rank, so the total never exceeds the budget; the chosen ranks
are recorded per layer in ``compression_info.json``.
"""

from __future__ import annotations

from typing import ClassVar

import torch

from tuneyard.compress.ranks import break_even_rank
from tuneyard.compress.whiten import WhitenedSVD
from tuneyard.errors import CompressionError


def allocate_ranks(
    spectra: dict[str, torch.Tensor], shapes: dict[str, tuple[int, int]], budget: int
) -> dict[str, int]:
    """Per-layer ranks whose factors fit ``budget`` weights, minimising summed relative error."""
    names = list(spectra)
    costs = {name: sum(shapes[name]) for name in names}
    floor = sum(costs.values())
    if budget < floor:
        raise CompressionError(
            f"a budget of {budget} weights cannot give every layer even rank 1 ({floor} weights).",
            "Use a larger --ratio or --rank.",
        )
    gains, owners, costs_per_item = [], [], []
    for index, name in enumerate(names):
        energy = spectra[name].to(torch.float64).pow(2)
        top = min(len(energy), break_even_rank(shapes[name]) - 1)
        relative = energy[1:top] / energy.sum().clamp_min(torch.finfo(torch.float64).tiny)
        gains.append(relative / costs[name])
        owners.append(torch.full((len(relative),), index))
        costs_per_item.append(torch.full((len(relative),), costs[name], dtype=torch.float64))
    gain = torch.cat(gains)
    # Stable sort keeps a layer's ranks in order when gains tie.
    order = torch.sort(gain, descending=True, stable=True).indices
    spent = torch.cumsum(torch.cat(costs_per_item)[order], 0)
    taken = order[spent <= budget - floor]
    counts = torch.bincount(torch.cat(owners)[taken], minlength=len(names))
    return {name: 1 + int(counts[index]) for index, name in enumerate(names)}


class AdaptiveSVD(WhitenedSVD):
    """Whitened SVD with ranks from :func:`allocate_ranks`."""

    name: ClassVar[str] = "adasvd"
    summary: ClassVar[str] = "whitened SVD with per-layer ranks under one parameter budget"
    allocates_ranks: ClassVar[bool] = True
