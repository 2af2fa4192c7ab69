"""``tuneyard grid``: run an experiment file's fine-tuning cells, then its eval grid, resumably.

``experiments/{experiment}/`` receives ``formatted_datasets/{task}`` (each task of the
file the grid trains or evaluates on, prepared once), ``compressed/`` (the compressed starts,
:mod:`tuneyard.experiments.starts`), ``finetuned_checkpoints/{name}-{id}`` (one run per
cell), ``finetune_logs/{name}-{id}.log`` (:mod:`tuneyard.experiments.cell_log`),
``grader_logs.json`` (where each evaluation's folder is),
``eval_grid_results.json`` and its heatmap (:mod:`tuneyard.evaluate.transfer_grid`),
``transfer_heatmap.png`` with a task axis (:mod:`tuneyard.experiments.transfer`),
``metrics.csv`` (one row per cell: its axes, state and eval scores) and ``seeds.csv``
(cells that differ only by seed: the mean and spread of their scores).

Each cell's state is read from its run folder's manifest, so a rerun is exact: a
complete cell is skipped, a cell whose run was interrupted (its manifest still says
running: the process died) resumes from its last checkpoint, a failed cell is left alone
unless ``retry_failed``, and a new cell starts. Cells run one after another in this
process, ``jobs`` at a time in local processes, or as Ray tasks
(:mod:`tuneyard.experiments.backends`).

States, logs and results are read and written through the yard's storage, so on a yard
in object storage a grid killed on one machine is resumed on another: what that machine
loads (prepared tasks, compressed starts, models to evaluate) is localized first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.experiments.backends import CellTask, Execution, run_tasks, threads_per_cell
from tuneyard.experiments.cell_log import LOGS
from tuneyard.experiments.cells import FinetuneCell, cell_state, expand
from tuneyard.experiments.search import Probe, SearchResult, run_search
from tuneyard.experiments.spec import AXES, FINETUNED, ExperimentSpec
from tuneyard.experiments.starts import COMPRESSED, CompressedStart, compress_starts
from tuneyard.experiments.transfer import TRANSFER_HEATMAP, draw_transfer_matrix
from tuneyard.yard.manifest import read_manifest_if_any

if TYPE_CHECKING:
    from tuneyard.evaluate.transfer_grid import GridResult
    from tuneyard.yard.root import Yard

CHECKPOINTS = "finetuned_checkpoints"
GRADER_LOGS = "grader_logs.json"
METRICS_FILE = "metrics.csv"
SEEDS_FILE = "seeds.csv"
# What a cell's run folder says about it; "new" when there is none yet.
STATES = ("new", "complete", "interrupted", "failed")


@dataclass
class CellPlan:
    """A cell, where its run goes, and what state that folder is in."""

    cell: FinetuneCell
    folder: Path
    state: str
    error: str | None = None


@dataclass
class ExperimentResult:
    """What a grid run did."""

    folder: Path
    cells: list[CellPlan]
    ran: int
    evals: GridResult | None
    search: SearchResult | None = None  # the smallest model within X points of dense
    seeds: Path | None = None  # seeds.csv: the spread of cells that differ only by seed
    transfer: Path | None = None  # transfer_heatmap.png: train task x eval task, with a task axis


def experiment_folder(spec: ExperimentSpec, yard: Yard) -> Path:
    return yard.target_path("experiment", experiment=spec.experiment)


def plan_cells(spec: ExperimentSpec, yard: Yard, spec_path: Path) -> list[CellPlan]:
    """Every cell with its folder and state; reads manifests only (``--dry-run`` shows this)."""
    experiment = experiment_folder(spec, yard)
    tasks = spec.finetuning.tasks if spec.finetuning is not None else []
    prepared = {
        task: str(task_folder(spec, yard, spec_path, task, False)) for task in tasks if task in spec.tasks
    }
    plans = []
    for cell in expand(spec, prepared, experiment / COMPRESSED):
        folder = cell.folder(experiment / CHECKPOINTS)
        plans.append(CellPlan(cell, folder, cell_state(folder, yard.storage)))
    return plans


def task_folder(spec: ExperimentSpec, yard: Yard, spec_path: Path, task: str, prepare: bool) -> Path:
    """``formatted_datasets/{task}``: a task of the file, prepared (``prepare``) once.

    ``prepare --task-spec`` on the experiment file itself, so the dataset's manifest
    records the task's format and grader, which eval applies. With ``prepare``, one
    prepared earlier (maybe on another machine) is made present here for the cells.
    """
    from tuneyard.data.prepare import PrepareOptions, dataset_target, prepare_dataset

    options = PrepareOptions(task_spec=str(spec_path), task=task, experiment=spec.experiment)
    folder = dataset_target(options, yard)
    if not prepare:
        return folder
    if cell_state(folder, yard.storage) != "complete":
        return prepare_dataset(options, yard).path
    return yard.storage.localize(folder)


def prepare_tasks(spec: ExperimentSpec, yard: Yard, spec_path: Path) -> None:
    """Every task of the file the grid trains or evaluates on, prepared once, before any cell runs."""
    used = list(spec.finetuning.tasks) if spec.finetuning is not None else []
    used += spec.evals.tasks if spec.evals is not None else []
    for task in dict.fromkeys(name for name in used if name in spec.tasks):
        task_folder(spec, yard, spec_path, task, prepare=True)


def run_experiment(
    spec: ExperimentSpec,
    yard: Yard,
    spec_path: Path,
    retry_failed: bool = False,
    on_cell: Callable[[CellPlan, int, int], None] | None = None,
    execution: Execution = Execution(),
    on_probe: Callable[[Probe], None] | None = None,
    on_start: Callable[[CompressedStart], None] | None = None,
) -> ExperimentResult:
    """Compress the starts left to run, run what the plan says is left, the eval grid, ``metrics.csv``.

    ``on_cell`` sees each cell as it is settled: skipped ones first, then each run as it ends;
    ``on_start`` each compressed start once it is written.
    """
    prepare_tasks(spec, yard, spec_path)
    plans = plan_cells(spec, yard, spec_path)
    todo = [p for p in plans if p.state in ("new", "interrupted") or (p.state == "failed" and retry_failed)]
    compress_starts([p.cell.start for p in todo if p.cell.start is not None], yard, on_start)
    settled = 0
    for plan in plans:
        if plan not in todo and on_cell is not None:
            settled += 1
            on_cell(plan, settled, len(plans))
    by_folder = {str(plan.folder): plan for plan in todo}
    tasks = [cell_task(plan, spec, yard, execution) for plan in todo]
    for outcome in run_tasks(tasks, execution):
        plan = by_folder[outcome.folder]
        plan.state, plan.error = outcome.state, outcome.error
        register_run(plan.folder, yard)
        settled += 1
        if on_cell is not None:
            on_cell(plan, settled, len(plans))
    ran = len(todo)
    folder = experiment_folder(spec, yard)
    evals = run_evals(spec, yard, spec_path, plans) if spec.evals is not None else None
    if evals is not None:
        write_grader_logs(folder / GRADER_LOGS, evals, yard)
    seeds = transfer = None
    if plans:
        write_metrics(folder / METRICS_FILE, plans, evals, yard)
        seeds = write_seed_spread(folder / SEEDS_FILE, plans, evals, yard)
    if plans and evals is not None and spec.evals is not None:
        scores = plan_scores(plans, evals, yard)
        transfer = draw_transfer_matrix(folder / TRANSFER_HEATMAP, plans, scores, evals, spec.evals.split)
    search = run_search(spec.search, folder, yard, on_probe) if spec.search is not None else None
    return ExperimentResult(folder, plans, ran, evals, search, seeds, transfer)


def cell_task(plan: CellPlan, spec: ExperimentSpec, yard: Yard, execution: Execution) -> CellTask:
    """The cell as a task for a backend: start it in its folder, or resume that folder."""
    options = plan.cell.options.model_copy(
        update={"output_dir": str(plan.folder), "name": plan.cell.name, "project": spec.experiment}
    )
    local = execution.backend == "local"
    threads = threads_per_cell(execution.jobs) if local else max(1, int(execution.cpus_per_cell))
    return CellTask(
        yard=yard.address, folder=str(plan.folder), resume=plan.state != "new",
        options=options.model_dump(mode="json"), threads=threads,
        log=str(experiment_folder(spec, yard) / LOGS / f"{plan.folder.name}.log"),
    )  # fmt: skip


def register_run(folder: Path, yard: Yard) -> None:
    """Index a cell's run from its manifest (the driver is the index's only writer)."""
    manifest = read_manifest_if_any(folder, yard.storage)
    if manifest is not None:
        manifest.path = yard.relative(folder)
        yard.register(manifest)


def run_evals(spec: ExperimentSpec, yard: Yard, spec_path: Path, plans: list[CellPlan]) -> GridResult | None:
    """The eval grid over the complete cells' runs (``finetuned``) and any other models listed.

    A task of the file is its prepared folder; each is graded with the task's own grader
    unless ``evals.grader`` overrides it.
    """
    from tuneyard.evaluate.options import GridOptions
    from tuneyard.evaluate.transfer_grid import run_grid
    from tuneyard.task_types.causal_lm.options import AnswerOptions

    evals = spec.evals
    assert evals is not None
    listed = [FINETUNED] if evals.models == FINETUNED else evals.models
    finetuned = [str(plan.folder) for plan in plans if plan.state == "complete"]
    models = [path for entry in listed for path in (finetuned if entry == FINETUNED else [entry])]
    if not models:
        return None
    tasks = [
        str(task_folder(spec, yard, spec_path, task, prepare=False)) if task in spec.tasks else task
        for task in evals.tasks
    ]
    answers = AnswerOptions().graded_by(evals.grader) if evals.grader is not None else AnswerOptions()
    options = GridOptions(
        models=models, tasks=tasks, split=evals.split, nb_eval_samples=evals.nb_eval_samples,
        checkpoint_to_eval=evals.checkpoint_to_eval, batch_size=evals.batch_size, max_length=evals.max_length,
        experiment=spec.experiment, answers=answers, server=evals.server_options(),
    )  # fmt: skip
    return run_grid(options, yard)


def write_grader_logs(path: Path, evals: GridResult, yard: Yard) -> None:
    """``grader_logs.json``: each complete eval's model, task and folder (predictions, grader logs).

    The evaluation stays filed next to the model it scored (where ``tuneyard eval`` puts
    it); the experiment lists where, relative to the yard, rather than keeping a second
    copy. A list in a file, not links: a yard in object storage has no links.
    """
    models = {axis.key: axis.label for axis in evals.models}
    tasks = {axis.key: axis.label for axis in evals.tasks}
    entries = [
        {"model": models[model], "task": tasks[task], "results": cell.results}
        for (model, task), cell in evals.cells.items()
        if cell.status == "complete" and cell.results
    ]
    yard.storage.write_text(path, json.dumps(entries, indent=2) + "\n")


def plan_scores(plans: list[CellPlan], evals: GridResult | None, yard: Yard) -> list[list[Any]]:
    """Each cell's main eval score on each task of the eval grid (None where it has none).

    A cell's run is scored as the folder ``checkpoint_to_eval`` picked in it (``best/``,
    ``last/``, a checkpoint) or as the run itself.
    """
    tasks = evals.tasks if evals is not None else []
    scores: dict[tuple[str, str], Any] = {}
    if evals is not None:
        for (model, task), cell in evals.cells.items():
            scores[(model, task)] = (
                cell.metrics.get(cell.main_metric or "") if cell.status == "complete" else None
            )
    evaluated = [model.key for model in evals.models] if evals is not None else []
    table = []
    for plan in plans:
        run = yard.relative(plan.folder)
        model_key = next((key for key in evaluated if key == run or key.startswith(run + "/")), run)
        table.append([scores.get((model_key, task.key)) for task in tasks])
    return table


def write_metrics(path: Path, plans: list[CellPlan], evals: GridResult | None, yard: Yard) -> None:
    """``metrics.csv``: a row per cell (axes, id, state, run folder) and its main eval score per task."""
    tasks = evals.tasks if evals is not None else []
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["cell", "name", *AXES, "state", "run", *(task.label for task in tasks)])
    for plan, scores in zip(plans, plan_scores(plans, evals, yard), strict=True):
        writer.writerow([
            plan.cell.id, plan.cell.name, *(plan.cell.axes[axis] for axis in AXES), plan.state,
            yard.relative(plan.folder), *scores,
        ])  # fmt: skip
    yard.storage.write_text(path, buffer.getvalue())


def write_seed_spread(path: Path, plans: list[CellPlan], evals: GridResult | None, yard: Yard) -> Path | None:
    """``seeds.csv``: cells that differ only by seed, grouped: per task the mean and spread of their scores.

    A row per group of two or more seeds (every axis but ``seed`` equal, the training
    ``task`` among them) and eval task (``eval_task``) with a score: ``seeds`` (how many
    scored), ``mean``, ``sd`` (sample standard deviation, n - 1), ``min`` and ``max``. How
    far seeds alone move a score is the noise any other axis's difference must beat. None
    (no file) when no group has two scored seeds.
    """
    import statistics

    tasks = evals.tasks if evals is not None else []
    varied = [axis for axis in AXES if axis != "seed"]
    groups: dict[tuple[Any, ...], list[list[Any]]] = {}
    for plan, scores in zip(plans, plan_scores(plans, evals, yard), strict=True):
        groups.setdefault(tuple(plan.cell.axes[axis] for axis in varied), []).append(scores)
    rows = []
    for axes, members in groups.items():
        for index, task in enumerate(tasks):
            values = [float(scores[index]) for scores in members if scores[index] is not None]
            if len(values) >= 2:
                numbers = [statistics.fmean(values), statistics.stdev(values), min(values), max(values)]
                rows.append([*axes, task.label, len(values), *(round(x, 6) for x in numbers)])
    if not rows:
        return None
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([*varied, "eval_task", "seeds", "mean", "sd", "min", "max"])
    writer.writerows(rows)
    yard.storage.write_text(path, buffer.getvalue())
    return path
