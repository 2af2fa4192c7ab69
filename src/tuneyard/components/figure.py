"""Figures drawn with matplotlib's object API on the Agg canvas.

Using :class:`matplotlib.figure.Figure` directly (never ``pyplot``) keeps plotting
free of global state and of any GUI backend, so reports draw the same on a laptop,
a headless server or inside a test.
"""

from __future__ import annotations

import io
from pathlib import Path

from matplotlib.figure import Figure

from tuneyard.yard.storage import LOCAL

DPI = 120


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` x ``height`` inches with a constrained layout."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save_png(figure: Figure, target: Path) -> Path:
    """Write ``figure`` to ``target`` as PNG, atomically."""
    image = io.BytesIO()
    figure.savefig(image, format="png")
    LOCAL.write_bytes(target, image.getvalue())
    return target
