"""``tuneyard grid``: parse flags, plan or run an experiment file (:mod:`tuneyard.experiments.grid`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from tuneyard.cli.console import note, out, quiet_libraries
from tuneyard.cli.context import yard_from
from tuneyard.errors import ConfigError


def grid(
    ctx: typer.Context,
    experiment_file: Annotated[
        Path, typer.Argument(help="The experiment YAML (seed 002's config.yaml shape).")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the cells and their state; run nothing.")
    ] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Run failed cells again.")] = False,
    jobs: Annotated[int, typer.Option(min=1, help="Cells run side by side here, sharing the cores.")] = 1,
    backend: Annotated[
        str, typer.Option(help="local, or ray: each cell a Ray task (a local instance, or --ray-address).")
    ] = "local",
    ray_address: Annotated[
        str | None, typer.Option(help="An existing Ray cluster (ray://... or host:port).")
    ] = None,
    cpus_per_cell: Annotated[float, typer.Option(min=0.1, help="Ray: CPUs each cell asks for.")] = 1.0,
    gpus_per_cell: Annotated[
        float, typer.Option(min=0.0, help="Ray: GPUs each cell asks for (Ray sets the GPUs it sees).")
    ] = 0.0,
) -> None:
    """Run an experiment file: a fine-tuning grid, then an eval grid (and a search, if it has one).

    The cells: models x compressions x strategies x LoRA ranks x layers x seeds.

    Example: tuneyard grid experiment.yaml --dry-run

    Complete cells are skipped, interrupted ones resume from a checkpoint, failed ones need --retry-failed.

    Results: experiments/{experiment}/ (compressed/, finetuned_checkpoints/, finetune_logs/, grader_logs/,
    eval_grid_results.json, heatmap, metrics.csv).
    """
    from tuneyard.cli.output import format_table
    from tuneyard.experiments.backends import Execution
    from tuneyard.experiments.grid import STATES, plan_cells, run_experiment
    from tuneyard.experiments.spec import load_experiment

    spec = load_experiment(experiment_file)
    yard = yard_from(ctx)
    if dry_run:
        plans = plan_cells(spec, yard, experiment_file)
        rows = [[plan.cell.id, plan.cell.name, plan.state, yard.relative(plan.folder)] for plan in plans]
        out.print(format_table(["cell", "name", "state", "run"], rows), end="", markup=False)
        counts = {state: sum(plan.state == state for plan in plans) for state in STATES}
        out.print(", ".join(f"{count} {state}" for state, count in counts.items() if count))
        starts = {plan.cell.start.id: plan.cell.start for plan in plans if plan.cell.start is not None}
        for start in starts.values():
            state = "compressed" if start.compressed else "to compress"
            out.print(
                f"start {start.label} of {start.options.model}: {state} ({yard.relative(start.folder)})"
            )
        return
    quiet_libraries()

    def on_cell(plan, number: int, total: int) -> None:  # type: ignore[no-untyped-def]
        note(f"[{number}/{total}] {plan.cell.name}: {plan.state}" + (f": {plan.error}" if plan.error else ""))

    if backend not in ("local", "ray"):
        raise ConfigError(f"--backend {backend!r} is not a backend.", "Use local or ray.")
    execution = Execution(backend, jobs, ray_address, cpus_per_cell, gpus_per_cell)  # type: ignore[arg-type]

    def on_probe(probe) -> None:  # type: ignore[no-untyped-def]
        verdict = "within the target" if probe.meets else "below the target"
        note(f"search: {probe.method} at {probe.ratio:g}: {probe.score:.4f} ({verdict})")

    def on_start(start) -> None:  # type: ignore[no-untyped-def]
        note(f"compressed start {start.label} of {start.options.model}: {yard.relative(start.folder)}")

    result = run_experiment(spec, yard, experiment_file, retry_failed, on_cell, execution, on_probe, on_start)
    if result.cells:
        out.print(str(result.folder / "metrics.csv"))
        note(f"ran {result.ran} cell(s) of {len(result.cells)}")
    if result.search is not None:
        print_search(*result.search, spec.search)
    if any(plan.state == "failed" for plan in result.cells):
        sys.exit(1)


def print_search(dense: float, methods: list, search) -> None:  # type: ignore[no-untyped-def]
    """Each method's smallest ratio within the target, and the path the bisection took."""
    from tuneyard.cli.output import format_table

    note(f"dense: {search.metric} {dense:.4f}; target: >= {dense - search.within:.4f}")
    rows = [
        [result.method, result.smallest, " -> ".join(f"{p.ratio:g} ({p.score:.3f})" for p in result.path)]
        for result in methods
    ]
    out.print(format_table(["method", "smallest ratio", "path"], rows), end="", markup=False)


def register(app: typer.Typer) -> None:
    """Add ``grid`` to the root app."""
    app.command("grid")(grid)
