"""Training curves from a run's ``training_log.csv``: losses, metrics and learning rate vs step."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from tuneyard.components.figure import new_figure, save_png
from tuneyard.errors import DataError

LOG_FILE = "training_log.csv"
FIXED_COLUMNS = ("epoch", "step", "train_loss", "val_loss", "lr")
# Plotted when present: the headline metrics of every task (the rest only crowd the panel).
HEADLINE_METRICS = ("accuracy", "f1_macro", "f1", "matthews_correlation", "pearson", "spearmanr")
# Trainer bookkeeping and the machine's use (memory, GPU busy), not quality metrics.
NOT_METRICS = ("runtime", "per_second", "steps_per", "samples_per", "_gib", "_percent")


def read_training_log(path: Path) -> dict[str, list[float]]:
    """Columns of the log as floats (empty cells become NaN); refuses a log without rows."""
    if not path.is_file():
        raise DataError(
            f"{path} does not exist.", "Training curves need a run folder written by tuneyard finetune."
        )
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    if not rows or "step" not in rows[0]:
        raise DataError(f"{path} has no rows with a 'step' column.", "Has the run evaluated at least once?")
    return {name: [_number(row.get(name)) for row in rows] for name in rows[0]}


def _number(cell: str | None) -> float:
    try:
        return float(cell or "nan")
    except ValueError:
        return math.nan


def metric_columns(columns: dict[str, list[float]]) -> list[str]:
    """Quality metrics logged at evaluation: the headline ones if any, else all of them."""
    logged = [
        name
        for name in columns
        if name not in FIXED_COLUMNS
        and not any(part in name for part in NOT_METRICS)
        and any(math.isfinite(v) for v in columns[name])
    ]
    headline = [name for name in logged if name in HEADLINE_METRICS]
    return headline or logged


def _plot_series(axes, steps: list[float], values: list[float], label: str) -> None:  # type: ignore[no-untyped-def]
    points = [(s, v) for s, v in zip(steps, values) if math.isfinite(s) and math.isfinite(v)]
    if points:
        axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=label)


def plot_training_curves(log: Path, target: Path, title: str) -> Path:
    """Loss (train and validation), metrics and learning rate against the optimizer step."""
    columns = read_training_log(log)
    steps = columns["step"]
    metrics = metric_columns(columns)
    has_lr = "lr" in columns and any(math.isfinite(v) for v in columns["lr"])
    panels = 2 + int(has_lr)
    figure = new_figure(5.0 * panels, 4.0)
    figure.suptitle(title)
    loss = figure.add_subplot(1, panels, 1)
    for name, label in (("train_loss", "train"), ("val_loss", "validation")):
        if name in columns:
            _plot_series(loss, steps, columns[name], label)
    loss.set(title="Loss", xlabel="Step", ylabel="Loss (cross-entropy; MSE for regression)")
    scores = figure.add_subplot(1, panels, 2)
    for name in metrics:
        _plot_series(scores, steps, columns[name], name)
    scores.set(title="Validation metrics", xlabel="Step", ylabel="Score")
    for axes in (loss, scores):
        if axes.lines:
            axes.legend(fontsize=8)
        axes.grid(alpha=0.3)
    if has_lr:
        rate = figure.add_subplot(1, panels, 3)
        _plot_series(rate, steps, columns["lr"], "lr")
        rate.set(title="Learning rate", xlabel="Step", ylabel="Learning rate")
        rate.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
        rate.grid(alpha=0.3)
    return save_png(figure, target)
