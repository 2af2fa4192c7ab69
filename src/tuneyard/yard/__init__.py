"""The yard: layout templates, manifests, atomic writers, inference and the index.

Names load lazily, so a read-only command (``runs ls``) that only needs the index
does not pay for pydantic and YAML at start-up.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tuneyard.yard.layout import Layout as Layout
    from tuneyard.yard.layout import format_layers as format_layers
    from tuneyard.yard.layout import run_name as run_name
    from tuneyard.yard.manifest import Manifest as Manifest
    from tuneyard.yard.manifest import Parent as Parent
    from tuneyard.yard.manifest import read_manifest as read_manifest
    from tuneyard.yard.manifest import write_manifest as write_manifest
    from tuneyard.yard.metadata_guess import infer_metadata as infer_metadata
    from tuneyard.yard.root import Yard as Yard

_HOMES = {
    "Layout": "layout",
    "format_layers": "layout",
    "run_name": "layout",
    "Manifest": "manifest",
    "Parent": "manifest",
    "read_manifest": "manifest",
    "write_manifest": "manifest",
    "infer_metadata": "metadata_guess",
    "Yard": "root",
}

__all__ = [
    "Layout",
    "Manifest",
    "Parent",
    "Yard",
    "format_layers",
    "infer_metadata",
    "read_manifest",
    "run_name",
    "write_manifest",
]


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"tuneyard.yard.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'tuneyard.yard' has no attribute {name!r}")
