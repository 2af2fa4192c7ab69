"""The table of compression methods: one entry per method, read by the CLI and the library.

Methods register as Python entry points in the group ``tuneyard.compression_methods``
(name -> ``module:Class``); tuneyard's own register there too (``pyproject.toml``), so a
separate package adds a method with no change here. Entries name the class rather
than import it, so the CLI lists the methods without loading torch;
:func:`build_method` imports the one asked for.
"""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import entry_points
from typing import TYPE_CHECKING

from tuneyard.errors import CompressionError

if TYPE_CHECKING:
    from tuneyard.compress.method import CompressionMethod

ENTRY_POINT_GROUP = "tuneyard.compression_methods"
# The order methods are listed in: from the plain SVD to the most adaptive one.
BUILTIN_ORDER = ("standard", "fwsvd", "whiten", "asvd", "adasvd")


def _registered() -> dict[str, str]:
    """name -> ``module:Class`` of every installed method, tuneyard's own first in their order."""
    found = {point.name: point.value for point in entry_points(group=ENTRY_POINT_GROUP)}
    order = [name for name in BUILTIN_ORDER if name in found] + sorted(set(found) - set(BUILTIN_ORDER))
    return {name: found[name] for name in order}


# name -> "module:Class"
METHODS: dict[str, str] = _registered()


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
