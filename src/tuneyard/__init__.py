"""tuneyard: fine-tune, compress, evaluate and file every result in a yard.

The package root stays light: heavy libraries (torch, transformers) load only when a
verb that needs them runs, so read-only commands start fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneyard.version import __version__

if TYPE_CHECKING:
    from tuneyard.models.loading import load_tokenizer as load_tokenizer
    from tuneyard.release.loading import load as load

__all__ = ["__version__", "load", "load_tokenizer"]


def __getattr__(name: str) -> Any:
    if name == "load":
        # The release layer's load: it adds "release:NAME@ALIAS" to the task types' loading.
        from tuneyard.release.loading import load

        return load
    if name == "load_tokenizer":
        from tuneyard.models.loading import load_tokenizer

        return load_tokenizer
    raise AttributeError(f"module 'tuneyard' has no attribute {name!r}")
