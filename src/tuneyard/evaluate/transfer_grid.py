"""The transfer grid: every model on every task, resumable cell by cell.

The grid folder (``experiments/{experiment}/`` or ``--output-dir``) holds
``eval_grid_results.json``, rewritten atomically after every cell, and
``eval_grid_heatmap.png``, and ``eval_grid_paired.csv``: every two models on each task
compared row by row (:mod:`tuneyard.evaluate.paired`). Running the same grid again skips the cells already
complete, so an interrupted grid (Ctrl-C, a lost machine) only computes what is
missing. Each cell is an ordinary ``tuneyard eval``: a model in the yard gets its
results and manifest metrics as usual; a model outside it gets them under
``<grid>/evaluation_results/<model>/``.

On a yard in object storage the rerun may be on another machine: the results file is
read through the yard's storage, and each model and kept evaluation is localized before
it is opened.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.components.throughput import json_number
from tuneyard.errors import EvaluationError, TuneyardError
from tuneyard.evaluate.model_eval import evaluate_model
from tuneyard.evaluate.options import GridOptions, load_eval_data
from tuneyard.evaluate.paired import compare_evals, row_scores
from tuneyard.evaluate.placement import owning_artifact
from tuneyard.task_types.causal_lm.options import answers_for_data
from tuneyard.yard.layout import model_display_name
from tuneyard.yard.manifest import MANIFEST_FILE, Manifest, Status, update_manifest, utc_now, write_manifest
from tuneyard.yard.root import Yard
from tuneyard.yard.storage import LOCAL, model_description_files

if TYPE_CHECKING:
    from tuneyard.data.loading import TaskData
    from tuneyard.yard.storage import Storage

RESULTS_FILE = "eval_grid_results.json"
HEATMAP_FILE = "eval_grid_heatmap.png"
PAIRED_FILE = "eval_grid_paired.csv"
PAIRED_COLUMNS = [
    "task", "model_a", "model_b", "metric", "rows", "mean_a", "mean_b", "difference",
    "ci_low", "ci_high", "a_better", "b_better", "p_value", "refused",
]  # fmt: skip

# Called after each cell: (cell number from 1, number of cells, model label, task label, state),
# state being "skipped" (done earlier), "complete" or "failed".
CellProgress = Callable[[int, int, str, str, str], None]


@dataclass
class GridCell:
    """One model x task result (or failure) with where its files are."""

    model: str
    task: str
    split: str
    status: str  # "complete" or "failed"
    metrics: dict[str, float | None] = field(default_factory=dict)
    main_metric: str | None = None
    results: str | None = None
    error: str | None = None
    created: str = field(default_factory=utc_now)
    grader: dict[str, Any] | None = None  # chat tasks: the grader that scored the answers, and its settings
    backend: str = "transformers"  # where the answers came from: this process, or a server (--backend server)


@dataclass
class GridAxis:
    """A model or task of the grid: the key that identifies it and a short label."""

    key: str
    label: str


def unique_labels(axes: list[GridAxis]) -> list[GridAxis]:
    """Append ``#2``, ``#3`` to labels that repeat, so heatmap rows stay distinct."""
    seen: dict[str, int] = {}
    result = []
    for axis in axes:
        seen[axis.label] = seen.get(axis.label, 0) + 1
        label = axis.label if seen[axis.label] == 1 else f"{axis.label}#{seen[axis.label]}"
        result.append(GridAxis(axis.key, label))
    return result


def checkpoint_to_eval(model: str, which: str, storage: Storage = LOCAL) -> str:
    """A run folder's ``best``, ``last`` (``-1``: seed 002's latest) or ``checkpoint-{epoch}-{step}``;
    any other model as given. The run's folders are listed through ``storage`` (the run
    may be another machine's)."""
    which = "last" if which == "-1" else which
    folder = Path(model).expanduser()
    listed = storage.list(folder.resolve())
    present = sorted(entry.name for entry in listed if entry.is_dir and not entry.name.startswith("."))
    if which in present:
        return str(folder / which)
    if which != "best" and any(part in present for part in ("best", "last")):
        raise EvaluationError(
            f"run {folder} has no {which!r} folder to evaluate.", f"It has: {', '.join(present)}."
        )
    return model


def model_axes(models: list[str], yard: Yard, which: str = "best") -> list[GridAxis]:
    """Each model's row of the grid: its key (the model folder, relative to the yard) and label.

    Only what names a model is fetched of another machine's (its JSON files): its weights
    wait until a cell of it still has to run (:func:`_evaluate_cell`).
    """
    from tuneyard.models.loading import local_model_folder
    from tuneyard.task_types.model_loading import resolve_checkpoint

    axes = []
    for model in models:
        chosen = checkpoint_to_eval(model, which, yard.storage)
        described = yard.localize(Path(chosen).expanduser(), only=model_description_files)
        named = described if described.exists() else chosen  # else no yard path: a hub id
        folder = local_model_folder(resolve_checkpoint(named, yard)).resolve()
        axes.append(GridAxis(key=yard.relative(folder), label=model_display_name(folder)))
    return unique_labels(axes)


def task_key(task: str, yard: Yard) -> str:
    """A GLUE name as given (lower case), a data folder relative to the yard."""
    folder = Path(task).expanduser()
    return yard.relative(folder) if folder.is_dir() else task.lower()


def grid_folder(options: GridOptions, yard: Yard) -> Path:
    return yard.target_path("experiment", output_dir=options.output_dir, experiment=options.experiment)


def read_done_cells(folder: Path, split: str, storage: Storage = LOCAL) -> dict[tuple[str, str], GridCell]:
    """Complete cells of an earlier run of this grid (same split), by (model, task)."""
    try:
        document = json.loads(storage.read_text(folder / RESULTS_FILE))
    except FileNotFoundError:
        return {}
    cells = [GridCell(**cell) for cell in document.get("cells", [])]
    return {(c.model, c.task): c for c in cells if c.status == "complete" and c.split == split}


@dataclass
class GridResult:
    folder: Path
    models: list[GridAxis]
    tasks: list[GridAxis]
    cells: dict[tuple[str, str], GridCell]
    computed: int
    heatmap: Path | None
    paired: Path | None = None

    def document(self, options: GridOptions) -> dict[str, Any]:
        """The content of ``eval_grid_results.json``."""
        return {
            "split": options.split,
            "models": [asdict(axis) for axis in self.models],
            "tasks": [asdict(axis) for axis in self.tasks],
            "cells": [asdict(cell) for cell in self.cells.values()],
            "heatmap": HEATMAP_FILE if self.heatmap else None,
            "paired": PAIRED_FILE if self.paired else None,
            "updated": utc_now(),
        }


def _register_experiment(folder: Path, yard: Yard, options: GridOptions, status: Status) -> None:
    """Give a grid folder inside the yard its manifest (kind ``experiment``) and index entry."""
    if not folder.resolve().is_relative_to(yard.root):
        return

    def record(manifest: Manifest) -> None:
        manifest.status = status
        manifest.config = options.model_dump(mode="json")

    if any(entry.name == MANIFEST_FILE for entry in yard.storage.list(folder)):  # maybe another machine's
        manifest = update_manifest(folder, record, yard.storage)
    else:
        manifest = Manifest(kind="experiment", name=folder.name, path=yard.relative(folder))
        record(manifest)
        write_manifest(folder, manifest, yard.storage)
    yard.register(manifest)


def run_grid(options: GridOptions, yard: Yard, progress: CellProgress | None = None) -> GridResult:
    """Evaluate every model on every task, skipping cells already complete."""
    models = model_axes(options.models, yard, options.checkpoint_to_eval)
    tasks_given = {task_key(task, yard): task for task in options.tasks}
    folder = grid_folder(options, yard)
    _register_experiment(folder, yard, options, "running")
    cells = read_done_cells(folder, options.split, yard.storage)
    task_data: dict[str, TaskData] = {}
    tasks = unique_labels([GridAxis(key, Path(key).name) for key in tasks_given])
    result = GridResult(folder, models, tasks, cells, computed=0, heatmap=None)
    total = len(models) * len(tasks)
    number = 0
    graders = {task.key: grader_for(options, tasks_given[task.key], yard.storage) for task in tasks}
    for model, model_path in zip(models, options.models):
        for task in tasks:
            number += 1
            state = "skipped"
            done = cells.get((model.key, task.key))
            # Computed again when graded by another grader, or answered by another backend, now.
            stale = done is not None and (
                done.grader not in (None, graders[task.key]) or done.backend != options.server.backend
            )
            if done is None or stale:
                cell = _evaluate_cell(
                    model, model_path, task.key, tasks_given[task.key], options, yard, folder, task_data
                )
                cells[(model.key, task.key)] = cell
                state = cell.status
                result.computed += 1
                yard.storage.write_text(
                    folder / RESULTS_FILE, json.dumps(result.document(options), indent=2) + "\n"
                )
            if progress is not None:
                progress(number, total, model.label, task.label, state)
    result.heatmap = _draw_heatmap(result, options)
    result.paired = write_paired_table(result, yard)
    yard.storage.write_text(folder / RESULTS_FILE, json.dumps(result.document(options), indent=2) + "\n")
    failed = any(cell.status != "complete" for cell in cells.values())
    _register_experiment(folder, yard, options, "failed" if failed else "complete")
    return result


def grader_for(options: GridOptions, task: str, storage: Storage) -> dict[str, Any]:
    """The grader (and settings) that scores a chat task's answers: the options', else the task's own."""
    return answers_for_data(options.answers, task, storage).grader_settings()


def write_paired_table(result: GridResult, yard: Yard) -> Path | None:
    """``eval_grid_paired.csv``: every two models on each task, row by row (B - A, A listed first).

    Cells whose eval has per-row scores take part (perplexity and regression evals have
    none). A pair whose rows differ (a cell kept from an earlier run with other
    ``--nb-eval-samples``) keeps the refusal in ``refused`` rather than stopping the grid.
    None when no two models could be paired.
    """
    rows: list[list[Any]] = []
    for task in result.tasks:
        scored = []
        for model in result.models:
            cell = result.cells.get((model.key, task.key))
            if cell is not None and cell.status == "complete" and cell.results:
                scores = row_scores(yard.storage.localize(yard.absolute(cell.results)))
                if not isinstance(scores, str):
                    scored.append((model.label, scores))
        for (label_a, a), (label_b, b) in itertools.combinations(scored, 2):
            try:
                paired = compare_evals(a, b)
            except EvaluationError as exc:
                rows.append([task.label, label_a, label_b, a.metric, *[None] * 9, exc.message])
                continue
            numbers = [paired.mean_a, paired.mean_b, paired.difference, paired.low, paired.high]
            rows.append([
                task.label, label_a, label_b, paired.metric, paired.rows, *(round(x, 6) for x in numbers),
                paired.a_better, paired.b_better, float(f"{paired.p_value:.6g}"), "",
            ])  # fmt: skip
    if not rows:
        return None
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(PAIRED_COLUMNS)
    writer.writerows(rows)
    yard.storage.write_text(result.folder / PAIRED_FILE, buffer.getvalue())
    return result.folder / PAIRED_FILE


def _evaluate_cell(
    model: GridAxis,
    model_path: str,
    key: str,
    task: str,
    options: GridOptions,
    yard: Yard,
    folder: Path,
    task_data: dict[str, TaskData],
) -> GridCell:
    """One cell; a user-fixable problem is recorded as a failed cell, not fatal to the grid."""
    try:
        if key not in task_data:
            task_data[key] = load_eval_data(task, options)
        data = task_data[key]
        model_folder = yard.storage.localize(yard.absolute(model.key))  # its weights, fetched for this cell
        output_dir = (
            None if owning_artifact(model_folder, yard) else folder / "evaluation_results" / model.label
        )
        outcome = evaluate_model(
            checkpoint_to_eval(model_path, options.checkpoint_to_eval, yard.storage),
            data,
            yard,
            split=options.split,
            output_dir=output_dir,
            batch_size=options.batch_size,
            max_length=options.max_length,
            device=options.device,
            answers=options.answers,
            samples=options.nb_eval_samples,
            server=options.server,
        )
    except TuneyardError as exc:
        return GridCell(model=model.key, task=key, split=options.split, status="failed", error=exc.message)
    metrics = {name: json_number(value) for name, value in outcome.result.metrics.items()}
    return GridCell(
        model=model.key,
        task=key,
        split=options.split,
        status="complete",
        metrics=metrics,
        main_metric=outcome.result.main_metric,
        results=yard.relative(outcome.folder),
        grader=outcome.grader,
        backend=options.server.backend,
    )


def _draw_heatmap(result: GridResult, options: GridOptions) -> Path | None:
    return draw_grid_heatmap(result.document(options), result.folder / HEATMAP_FILE)


def draw_grid_heatmap(document: dict[str, Any], target: Path) -> Path | None:
    """The heatmap of an ``eval_grid_results.json`` document (None when no cell is complete).

    Each column shows its task's main metric; a missing or failed cell is ``n/a``.
    """
    from tuneyard.report.heatmap import plot_grid_heatmap

    cells = {(c["model"], c["task"]): c for c in document["cells"] if c["status"] == "complete"}
    if not cells:
        return None
    columns, matrix_columns = [], []
    for task in document["tasks"]:
        metric = (
            next((c["main_metric"] for (_, t), c in cells.items() if t == task["key"]), None) or "accuracy"
        )
        columns.append(f"{task['label']}\n({metric})")
        matrix_columns.append(
            [
                cells[(m["key"], task["key"])]["metrics"].get(metric)
                if (m["key"], task["key"]) in cells
                else None
                for m in document["models"]
            ]
        )
    matrix = [list(row) for row in zip(*matrix_columns)]
    return plot_grid_heatmap(
        matrix,
        [m["label"] for m in document["models"]],
        columns,
        target,
        f"Transfer grid ({document['split']} split)",
    )
