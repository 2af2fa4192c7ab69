"""The confusion matrix as one PNG: counts and row shares (recall on the diagonal) in each cell."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tuneyard.components.figure import new_figure, save_png


def confusion_counts(gold: Sequence[int], predicted: Sequence[int], num_labels: int) -> np.ndarray:
    """``(num_labels, num_labels)`` counts: row = gold class, column = predicted class."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(gold, predicted, labels=list(range(num_labels)))


def row_normalised(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total (recall per class on the diagonal); empty rows stay 0."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)


def plot_confusion_matrix(counts: np.ndarray, label_names: Sequence[str], target: Path, title: str) -> Path:
    """One panel: each cell shows its count and its share of the gold row, shaded by that share.

    Shading by the row share (recall on the diagonal) keeps a small class as readable
    as a large one; the counts say how many examples each share stands for.
    """
    size = len(label_names)
    rates = row_normalised(counts)
    side = max(4.0, 0.6 * size + 2.5)
    figure = new_figure(side + 0.5, side)
    axes = figure.add_subplot()
    axes.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    axes.set_title(title, fontsize=10)
    axes.set_xlabel("Predicted label")
    axes.set_ylabel("Gold label (cells: count, share of the row)")
    axes.set_xticks(range(size), labels=list(label_names), rotation=45, ha="right")
    axes.set_yticks(range(size), labels=list(label_names))
    if size <= 20:
        for row in range(size):
            for column in range(size):
                rate = rates[row, column]
                axes.text(
                    column,
                    row,
                    f"{counts[row, column]}\n{rate:.0%}",
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if rate > 0.5 else "black",
                )
    return save_png(figure, target)
