"""tuneyard: fine-tune, compress, evaluate and file every result in a yard.

The package root stays light: heavy libraries (torch, transformers) load only when a
verb that needs them runs, so read-only commands start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from tuneyard.models.loading import load as load
    from tuneyard.models.loading import load_tokenizer as load_tokenizer

__all__ = ["__version__", "load", "load_tokenizer"]


def __getattr__(name: str) -> Any:
    if name in ("load", "load_tokenizer"):
        from tuneyard.models import loading

        return getattr(loading, name)
    raise AttributeError(f"module 'tuneyard' has no attribute {name!r}")
