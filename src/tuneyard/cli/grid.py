"""``tuneyard grid``: parse flags, plan or run an experiment file (:mod:`tuneyard.experiments.grid`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tuneyard.cli.console import note, out, quiet_libraries
from tuneyard.cli.context import yard_from
from tuneyard.cli.options_cli import with_model_options
from tuneyard.experiments.options import GridRunOptions


@with_model_options(GridRunOptions)
def grid(
    ctx: typer.Context,
    experiment_file: Annotated[
        Path, typer.Argument(help="The experiment YAML (seed 002's config.yaml shape).")
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List the cells and their state; run nothing.")
    ] = False,
    flags: dict[str, Any] | None = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML file with these options.")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override an option: --set jobs=2.")
    ] = None,
) -> None:
    """Run an experiment file: a fine-tuning grid, then an eval grid (and a search, if it has one).

    The cells: models x tasks x compressions x strategies x LoRA ranks x layers x seeds.

    Example: tuneyard grid experiment.yaml --dry-run

    Complete cells are skipped, interrupted ones resume from a checkpoint, failed ones need --retry-failed.

    Results: experiments/{experiment}/ (compressed/, finetuned_checkpoints/, finetune_logs/, grader_logs.json,
    eval_grid_results.json, heatmap, metrics.csv).
    """
    from tuneyard.cli.output import format_table
    from tuneyard.config import resolve_options
    from tuneyard.experiments.grid import STATES, plan_cells, run_experiment
    from tuneyard.experiments.spec import load_experiment

    options = resolve_options(GridRunOptions, flags, config, overrides or [])
    spec = load_experiment(experiment_file)
    for warning in spec.warnings:
        note(f"warning: {warning}")
    yard = yard_from(ctx)
    if dry_run:
        plans = plan_cells(spec, yard, experiment_file)
        rows = [[plan.cell.id, plan.cell.name, plan.state, yard.relative(plan.folder)] for plan in plans]
        out.print(format_table(["cell", "name", "state", "run"], rows), end="", markup=False)
        counts = {state: sum(plan.state == state for plan in plans) for state in STATES}
        out.print(", ".join(f"{count} {state}" for state, count in counts.items() if count))
        starts = {plan.cell.start.id: plan.cell.start for plan in plans if plan.cell.start is not None}
        for start in starts.values():
            state = "compressed" if start.is_compressed(yard.storage) else "to compress"
            out.print(
                f"start {start.label} of {start.options.model}: {state} ({yard.relative(start.folder)})"
            )
        return
    quiet_libraries()

    def on_cell(plan, number: int, total: int) -> None:  # type: ignore[no-untyped-def]
        note(f"[{number}/{total}] {plan.cell.name}: {plan.state}" + (f": {plan.error}" if plan.error else ""))

    execution = options.execution()

    def on_probe(probe) -> None:  # type: ignore[no-untyped-def]
        split = spec.search.select_on if spec.search is not None else ""
        note(
            f"search: {probe.method} at {probe.ratio:g} (calibration seed {probe.seed}): "
            f"{split} {probe.score:.4f}"
        )

    def on_start(start) -> None:  # type: ignore[no-untyped-def]
        note(f"compressed start {start.label} of {start.options.model}: {yard.relative(start.folder)}")

    result = run_experiment(
        spec, yard, experiment_file, options.retry_failed, on_cell, execution, on_probe, on_start
    )
    if result.cells:
        out.print(str(result.folder / "metrics.csv"))
        note(f"ran {result.ran} cell(s) of {len(result.cells)}")
    if result.seeds is not None:
        note(f"mean and spread over seeds: {result.seeds}")
    if result.transfer is not None:
        note(f"transfer matrix (trained on x evaluated on): {result.transfer}")
    if result.search is not None:
        print_search(result.search, spec.search)
    if any(plan.state == "failed" for plan in result.cells):
        sys.exit(1)


def print_search(result, search) -> None:  # type: ignore[no-untyped-def]
    """Each method's path on ``select_on`` and its answer, then the answers on ``report_on``."""
    from tuneyard.cli.output import format_table

    note(f"dense: {search.metric} {result.dense:.4f} on {search.select_on}; target: >= {result.target:.4f}")
    rows = [
        [method.method, method.smallest, " -> ".join(point_text(point) for point in method.path)]
        for method in result.methods
    ]
    out.print(
        format_table(["method", "smallest ratio", f"path ({search.select_on})"], rows), end="", markup=False
    )
    for method in result.methods:
        for small, large in method.non_monotonic:
            note(f"non-monotonic: {method.method} met the target at {small:g} but missed it at {large:g}")
    out.print(f"on {search.report_on} (chosen on {search.select_on}; 95% bootstrap intervals over the rows):")
    table = []
    for candidate in [result.dense_report, *(m.chosen for m in result.methods if m.chosen is not None)]:
        versus = candidate.versus_dense
        table.append([
            candidate.label, f"{candidate.score:.4f}", f"{candidate.low:.4f}..{candidate.high:.4f}",
            *([f"{versus.difference:+.4f}", f"{versus.low:+.4f}..{versus.high:+.4f}", f"{versus.p_value:.3g}"]
              if versus is not None else ["", "", ""]),
        ])  # fmt: skip
    headers = ["model", search.metric, "interval (row mean)", "- dense", "interval", "McNemar p"]
    out.print(format_table(headers, table), end="", markup=False)


def point_text(point) -> str:  # type: ignore[no-untyped-def]
    """``0.72 (0.892)``, or with several seeds ``0.72 (0.895, 3 seeds, within noise)``."""
    seeds = f", {len(point.probes)} seeds" if len(point.probes) > 1 else ""
    return f"{point.ratio:g} ({point.score:.3f}{seeds}{', within noise' if point.noisy else ''})"


def register(app: typer.Typer) -> None:
    """Add ``grid`` to the root app."""
    app.command("grid")(grid)
