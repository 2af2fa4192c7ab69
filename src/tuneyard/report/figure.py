"""Figures drawn with matplotlib's object API on the Agg canvas.

Using :class:`matplotlib.figure.Figure` directly (never ``pyplot``) keeps plotting
free of global state and of any GUI backend, so reports draw the same on a laptop,
a headless server or inside a test.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from matplotlib.figure import Figure

DPI = 120


def new_figure(width: float, height: float) -> Figure:
    """An empty figure of ``width`` x ``height`` inches with a constrained layout."""
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def save_png(figure: Figure, target: Path) -> Path:
    """Write ``figure`` to ``target`` as PNG atomically (temp file + rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp.png")
    figure.savefig(temp, format="png")
    os.replace(temp, target)
    return target
