"""The confusion matrix, as counts and row-normalised, side by side in one PNG."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tuneyard.report.figure import new_figure, save_png


def confusion_counts(gold: Sequence[int], predicted: Sequence[int], num_labels: int) -> np.ndarray:
    """``(num_labels, num_labels)`` counts: row = gold class, column = predicted class."""
    from sklearn.metrics import confusion_matrix

    return confusion_matrix(gold, predicted, labels=list(range(num_labels)))


def row_normalised(counts: np.ndarray) -> np.ndarray:
    """Each row divided by its total (recall per class on the diagonal); empty rows stay 0."""
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros(counts.shape, dtype=float), where=totals > 0)


def plot_confusion_matrix(counts: np.ndarray, label_names: Sequence[str], target: Path, title: str) -> Path:
    """Draw counts (left) and row-normalised rates (right) with labelled axes."""
    size = len(label_names)
    side = max(4.0, 0.45 * size + 2.5)
    figure = new_figure(2 * side + 1, side)
    figure.suptitle(title)
    panels = ((counts, "Counts", "d"), (row_normalised(counts), "Row-normalised (recall)", ".2f"))
    for position, (values, name, fmt) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, 2, position)
        image = axes.imshow(values, cmap="Blues", vmin=0, vmax=1 if fmt == ".2f" else None)
        figure.colorbar(
            image, ax=axes, shrink=0.8, label="examples" if fmt == "d" else "fraction of gold row"
        )
        axes.set_title(name)
        axes.set_xlabel("Predicted label")
        axes.set_ylabel("Gold label")
        axes.set_xticks(range(size), labels=list(label_names), rotation=45, ha="right")
        axes.set_yticks(range(size), labels=list(label_names))
        if size <= 20:
            threshold = values.max() / 2 if values.size else 0
            for row in range(size):
                for column in range(size):
                    value = values[row, column]
                    axes.text(
                        column,
                        row,
                        format(value, fmt),
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white" if value > threshold else "black",
                    )
    return save_png(figure, target)
