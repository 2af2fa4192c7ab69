"""Names for ``datasets`` map results that nothing caches, so the function is never hashed.

``datasets`` names a map's result (its fingerprint) by hashing the function with
everything in its closure: a tokenizing function's tokenizer, 0.3 CPU s for MiniLM's,
on every split of every finetune. The name keys a cache file only for a split read
from cache files (a hub dataset ``load_dataset`` downloaded); an in-memory split, as
tuneyard reads local split files, writes none, so a fresh random name is as good.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datasets import Dataset


def map_fingerprint(split: Dataset) -> str | None:
    """``new_fingerprint`` for a map over ``split``: fresh in memory, None (hash the function) on disk."""
    from datasets.fingerprint import generate_random_fingerprint

    return None if split.cache_files else generate_random_fingerprint()
