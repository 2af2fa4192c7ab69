"""The transfer matrix: each run of the task axis (trained on one task) scored on every eval task.

Seed 002's study: fine-tune each start on each task, evaluate every run on every task,
and read the matrix row by row (what training on this task does to each task).
``transfer_heatmap.png`` draws it from the eval grid's scores: a row per cell of the
fine-tuning grid (labelled by its training task when the grid varies only the task, by
the cell's name otherwise), a column per eval task with its main metric. A cell whose
eval failed (a classifier asked about another label set) or is missing is ``n/a``.
``metrics.csv`` holds the same numbers with the ``task`` column.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.experiments.spec import AXES

if TYPE_CHECKING:
    from tuneyard.evaluate.transfer_grid import GridResult
    from tuneyard.experiments.grid import CellPlan

TRANSFER_HEATMAP = "transfer_heatmap.png"


def row_labels(plans: list[CellPlan]) -> list[str]:
    """The training task when the cells differ only by task, else each cell's name (which names its task)."""
    others = {tuple(plan.cell.axes[axis] for axis in AXES if axis != "task") for plan in plans}
    return [Path(plan.cell.axes["task"]).name if len(others) == 1 else plan.cell.name for plan in plans]


def column_labels(evals: GridResult) -> list[str]:
    """Each eval task with the main metric its column shows."""
    labels = []
    for task in evals.tasks:
        metric = next(
            (
                cell.main_metric
                for (_, key), cell in evals.cells.items()
                if key == task.key and cell.main_metric
            ),
            None,
        )
        labels.append(f"{task.label}\n({metric or 'n/a'})")
    return labels


def draw_transfer_matrix(
    target: Path, plans: list[CellPlan], scores: list[list[Any]], evals: GridResult, split: str
) -> Path | None:
    """``transfer_heatmap.png`` (train task x eval task) when the grid trains on several tasks; else None.

    ``scores``: each plan's main score per eval task (``grid.plan_scores``).
    """
    from tuneyard.report.heatmap import plot_grid_heatmap

    if len({plan.cell.axes["task"] for plan in plans}) < 2 or not evals.tasks:
        return None
    return plot_grid_heatmap(
        scores,
        row_labels(plans),
        column_labels(evals),
        target,
        f"Transfer: trained on (rows) x evaluated on (columns), {split} split",
        axis_names=("Evaluated on", "Trained on"),
    )
