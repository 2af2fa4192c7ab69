"""The eval-grid heatmap: models (rows) x tasks (columns), each cell the task's main metric."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib import colormaps

from tuneyard.components.figure import new_figure, save_png


def plot_grid_heatmap(
    values: Sequence[Sequence[float | None]],
    models: Sequence[str],
    tasks: Sequence[str],
    target: Path,
    title: str,
    axis_names: tuple[str, str] = ("Task", "Model"),
) -> Path:
    """Draw the grid; a missing or failed cell is grey and marked ``n/a``.

    ``axis_names``: the names of the columns' and the rows' axes (x, y).
    """
    matrix = np.array([[np.nan if v is None else float(v) for v in row] for row in values], dtype=float)
    figure = new_figure(max(5.0, 1.6 * len(tasks) + 3), max(3.0, 0.55 * len(models) + 2))
    axes = figure.add_subplot(1, 1, 1)
    finite = matrix[np.isfinite(matrix)]
    low = min(0.0, float(finite.min())) if finite.size else 0.0
    high = max(1.0, float(finite.max())) if finite.size else 1.0
    colormap = colormaps["viridis"].with_extremes(bad="lightgrey")
    image = axes.imshow(np.ma.masked_invalid(matrix), cmap=colormap, vmin=low, vmax=high, aspect="auto")
    figure.colorbar(image, ax=axes, label="score (task's main metric)")
    axes.set_xticks(range(len(tasks)), labels=list(tasks))
    axes.set_yticks(range(len(models)), labels=list(models))
    axes.set_xlabel(axis_names[0])
    axes.set_ylabel(axis_names[1])
    axes.set_title(title)
    for row in range(matrix.shape[0]):
        for column in range(matrix.shape[1]):
            value = matrix[row, column]
            if not np.isfinite(value):
                axes.text(column, row, "n/a", ha="center", va="center", fontsize=9, color="black")
                continue
            # viridis is light at the top of the scale: dark text there, white below
            color = "black" if value > low + 0.6 * (high - low) else "white"
            axes.text(column, row, f"{value:.3f}", ha="center", va="center", fontsize=9, color=color)
    return save_png(figure, target)
