"""Which rank each layer gets: ``--rank 64``, ``--rank attn=40,ffn=240`` or ``--ratio 0.5``.

A layer of shape ``(m, n)`` at rank ``k`` stores ``k (m + n)`` weights instead of
``m n``. At or above the break-even rank (``k (m + n) >= m n``) factorising saves
nothing, so such a layer stays dense and the caller says so.

Ranks chosen from ``--ratio`` are rounded down to a multiple of :data:`RANK_MULTIPLE` in
layers whose smaller side is at least :data:`ALIGNED_FROM`: matrix-multiply kernels work
in blocks of 8 floats, and an odd rank costs more than the next multiple of 8 (measured
on MiniLM's ``1536 -> 384`` FFN layer, batch 32 x 128, one CPU: rank 153 ran in 0.61x the
dense time, rank 152 in 0.55x). Smaller layers (test models) keep the exact rank.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from tuneyard.errors import CompressionError

MODULE_TYPES = ("attn", "ffn")
RANK_MULTIPLE = 8
ALIGNED_FROM = 256


@dataclass(frozen=True)
class RankSpec:
    """One rank for every layer, or one per module type (``attn`` / ``ffn``)."""

    uniform: int | None = None
    by_type: tuple[tuple[str, int], ...] = ()

    def for_type(self, module_type: str | None) -> int:
        """The requested rank for a layer of ``module_type``."""
        if self.uniform is not None:
            return self.uniform
        ranks = dict(self.by_type)
        if module_type not in ranks:
            raise CompressionError(
                f"--rank gives no rank for {module_type!r} layers.",
                f"Give every type, e.g. --rank attn=40,ffn=240 (types: {', '.join(MODULE_TYPES)}).",
            )
        return ranks[module_type]

    @property
    def label(self) -> str:
        """The rank as it appears in a folder name: ``64`` or ``attn40-ffn240``."""
        if self.uniform is not None:
            return str(self.uniform)
        return "-".join(f"{name}{rank}" for name, rank in self.by_type)


def parse_rank(text: str | int) -> RankSpec:
    """``64`` -> uniform rank; ``attn=40,ffn=240`` -> per module type."""
    raw = str(text).strip()
    if "=" not in raw:
        return RankSpec(uniform=_rank_value(raw, raw))
    by_type: dict[str, int] = {}
    for part in raw.split(","):
        name, _, value = part.partition("=")
        name = name.strip()
        if name not in MODULE_TYPES:
            raise CompressionError(
                f"--rank {raw!r}: unknown module type {name!r}.",
                f"Module types: {', '.join(MODULE_TYPES)}, e.g. --rank attn=40,ffn=240.",
            )
        by_type[name] = _rank_value(value.strip(), raw)
    return RankSpec(by_type=tuple(sorted(by_type.items())))


def _rank_value(value: str, whole: str) -> int:
    try:
        rank = int(value)
    except ValueError:
        raise CompressionError(
            f"--rank {whole!r} is not a whole number or a list like attn=40,ffn=240."
        ) from None
    if rank < 1:
        raise CompressionError(
            f"--rank {rank} is below 1.", "A rank is the number of singular values kept: 1 or more."
        )
    return rank


def break_even_rank(shape: tuple[int, int]) -> int:
    """Smallest rank at which the two factors hold as many weights as the dense layer."""
    m, n = shape
    return math.ceil(m * n / (m + n))


def check_rank(name: str, shape: tuple[int, int], rank: int) -> None:
    """Refuse a rank below 1 or above ``min(m, n)``, naming the layer and its shape."""
    m, n = shape
    if rank < 1:
        raise CompressionError(f"rank {rank} for {name} is below 1.")
    if rank > min(m, n):
        raise CompressionError(
            f"--rank {rank} is larger than the smallest side of {name} ({m} x {n}).",
            f"Use a rank below {break_even_rank(shape)} to save parameters there, "
            "or --ratio 0.5 to let tuneyard choose.",
        )


def rank_for_ratio(shape: tuple[int, int], ratio: float) -> int:
    """The rank that keeps about ``ratio`` of a layer's weights (at least 1), kernel-aligned.

    Large layers get a multiple of :data:`RANK_MULTIPLE` (never above the exact rank, so
    the model keeps at most ``ratio`` of the weights).
    """
    m, n = shape
    exact = max(1, math.floor(ratio * m * n / (m + n)))
    if min(m, n) < ALIGNED_FROM or exact < RANK_MULTIPLE:
        return exact
    return exact - exact % RANK_MULTIPLE


def check_ratio(ratio: float) -> None:
    """A ratio is a fraction of weights kept, strictly between 0 and 1."""
    if not 0 < ratio < 1:
        raise CompressionError(
            f"--ratio {ratio} is not between 0 and 1.",
            "It is the fraction of the compressible weights to keep, e.g. --ratio 0.5.",
        )
