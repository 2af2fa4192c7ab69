"""The table of compression methods: one entry per method, read by the CLI and the library."""

from __future__ import annotations

from tuneyard.compress.adasvd import AdaptiveSVD
from tuneyard.compress.asvd import ActivationAwareSVD
from tuneyard.compress.fwsvd import FisherWeightedSVD
from tuneyard.compress.method import CompressionMethod
from tuneyard.compress.standard import StandardSVD
from tuneyard.compress.whiten import WhitenedSVD
from tuneyard.errors import CompressionError

METHODS: dict[str, type[CompressionMethod]] = {
    method.name: method
    for method in (StandardSVD, FisherWeightedSVD, WhitenedSVD, ActivationAwareSVD, AdaptiveSVD)
}


def build_method(name: str, alpha: float = 0.5) -> CompressionMethod:
    """The method called ``name``, configured; lists the supported ones if unknown."""
    if name not in METHODS:
        raise CompressionError(
            f"unknown compression method {name!r}.", f"Supported methods: {', '.join(METHODS)}."
        )
    if name == ActivationAwareSVD.name:
        return ActivationAwareSVD(alpha=alpha)
    return METHODS[name]()
