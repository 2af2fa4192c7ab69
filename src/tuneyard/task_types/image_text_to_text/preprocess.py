"""How images become pixels: the processor's own steps (the deployment-aligned choice lands next)."""

from __future__ import annotations

from typing import Any

from tuneyard.errors import ConfigError

PREPROCESSES = {"processor": "the model's own processor (resizing, tiling, normalising as it is configured)"}


def model_inputs(
    processor: Any, texts: list[str], images: list[list[Any]], preprocess: str, **text_kwargs: Any
) -> Any:
    """Model inputs for ``texts`` (each ``<image>`` expanded) and their images, as ``preprocess`` says."""
    if preprocess not in PREPROCESSES:
        raise ConfigError(f"unknown --image-preprocess {preprocess!r}.", f"Choose {', '.join(PREPROCESSES)}.")
    return processor(text=texts, images=images, return_tensors="pt", padding=True, **text_kwargs)
