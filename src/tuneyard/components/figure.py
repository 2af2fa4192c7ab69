"""Figures drawn with matplotlib's object API on the Agg canvas.

Using :class:`matplotlib.figure.Figure` directly (never ``pyplot``) keeps plotting
free of global state and of any GUI backend, so reports draw the same on a laptop,
a headless server or inside a test.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path

from matplotlib.axes import Axes
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


def plot_per_layer(axes: Axes, values: Mapping[tuple[str, int], float], title: str, ylabel: str) -> None:
    """One line per layer type against the block number: a weight analysis's per-layer panel.

    ``values`` maps ``(layer type, block number)`` (``("self_attn.q_proj", 3)``) to the
    number drawn; types keep their first-seen order in the legend.
    """
    from matplotlib.ticker import MaxNLocator

    for kind in dict.fromkeys(key[0] for key in values):
        points = sorted((number, value) for (other, number), value in values.items() if other == kind)
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=kind)
    axes.set(title=title, xlabel="Layer", ylabel=ylabel)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(fontsize=7)
    axes.grid(alpha=0.3)
