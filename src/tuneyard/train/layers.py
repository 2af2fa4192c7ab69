"""``--lora-layers``: ``0,1,2``, ``7-12`` or a mix, as a sorted list of layer numbers."""

from __future__ import annotations

from tuneyard.errors import TrainingError

EXAMPLES = "Examples: 0,1,2 or 7-12 or 0,4-6."


def parse_layers(spec: str, option: str = "--lora-layers") -> list[int]:
    """Layer numbers named by ``spec`` (given to ``option``); ranges are inclusive (``7-12``: six)."""
    layers: set[int] = set()
    for part in (piece.strip() for piece in spec.split(",")):
        if not part:
            continue
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise TrainingError(f"{option} {spec!r}: {part!r} is not a layer number or a range.", EXAMPLES)
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise TrainingError(
                f"{option} {spec!r}: range {part!r} runs backwards.", f"Write {last}-{first}."
            )
        layers.update(range(first, last + 1))
    if not layers:
        raise TrainingError(f"{option} {spec!r} names no layer.", EXAMPLES)
    return sorted(layers)


def check_layers(spec: str, layers: list[int], available: int, option: str = "--lora-layers") -> None:
    """Refuse layer numbers the model does not have (numbering starts at 0)."""
    missing = [layer for layer in layers if layer >= available]
    if missing:
        raise TrainingError(
            f"{option} {spec!r} names layer {missing[0]}, but the model has {available} layers.",
            f"Use layers 0-{available - 1}.",
        )
