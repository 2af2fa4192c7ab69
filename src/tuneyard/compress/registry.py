"""The table of compression methods: one entry per method, read by the CLI and the library.

Entries name the class rather than import it, so the CLI lists the methods without
loading torch; :func:`build_method` imports the one asked for.
"""

from __future__ import annotations

import importlib
import inspect
from typing import TYPE_CHECKING

from tuneyard.errors import CompressionError

if TYPE_CHECKING:
    from tuneyard.compress.method import CompressionMethod

# name -> "module:Class"
METHODS: dict[str, str] = {
    "standard": "tuneyard.compress.standard:StandardSVD",
    "fwsvd": "tuneyard.compress.fwsvd:FisherWeightedSVD",
    "whiten": "tuneyard.compress.whiten:WhitenedSVD",
    "asvd": "tuneyard.compress.asvd:ActivationAwareSVD",
    "adasvd": "tuneyard.compress.adasvd:AdaptiveSVD",
}


def method_class(name: str) -> type[CompressionMethod]:
    """The class of the method called ``name``; lists the supported ones if unknown."""
    if name not in METHODS:
        raise CompressionError(
            f"unknown compression method {name!r}.", f"Supported methods: {', '.join(METHODS)}."
        )
    module, _, attribute = METHODS[name].partition(":")
    found: type[CompressionMethod] = getattr(importlib.import_module(module), attribute)
    return found


def build_method(name: str, **settings: object) -> CompressionMethod:
    """The method called ``name``, given those of ``settings`` its constructor takes."""
    chosen = method_class(name)
    accepted = inspect.signature(chosen).parameters
    return chosen(**{key: value for key, value in settings.items() if key in accepted})
