"""A bar chart of one metric across runs (from their manifests)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tuneyard.components.figure import new_figure, save_png


def plot_metric_comparison(names: Sequence[str], values: Sequence[float], metric: str, target: Path) -> Path:
    """Horizontal bars, best at the top, each labelled with its value."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    figure = new_figure(8.0, max(2.5, 0.45 * len(values) + 1.5))
    axes = figure.add_subplot(1, 1, 1)
    bars = axes.barh([names[i] for i in order], [values[i] for i in order], color="tab:blue")
    axes.bar_label(bars, labels=[f"{values[i]:.4f}" for i in order], padding=3, fontsize=8)
    axes.set_xlabel(metric)
    axes.set_ylabel("Run")
    axes.set_title(f"{metric} across runs")
    axes.set_xlim(min(0.0, *values) * 1.15, max(1.0, max(values) * 1.15))
    axes.grid(axis="x", alpha=0.3)
    return save_png(figure, target)
