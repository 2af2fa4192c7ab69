"""``tuneyard report``: parse flags, call :func:`tuneyard.report.build.build_report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tuneyard.cli.console import note, out, quiet_libraries
from tuneyard.cli.options_cli import with_model_options
from tuneyard.report.options import ReportOptions


@with_model_options(ReportOptions)
def report_command(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="A run, model, compressed model, eval grid or project folder.")
    ],
    flags: dict[str, Any],
    config: Annotated[Path | None, typer.Option("--config", help="YAML file with these options.")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override an option: --set metric=sst2.accuracy.")
    ] = None,
) -> None:
    """Draw training curves, weight spectra and norms, grid heatmaps and run comparisons as PNGs.

    Example: tuneyard report outputs/demo/topics --metric debian_topics.accuracy
    """
    from tuneyard.cli.context import yard_from
    from tuneyard.config import resolve_options
    from tuneyard.report.build import build_report

    options = resolve_options(ReportOptions, flags, config, overrides or [])
    quiet_libraries()
    yard = yard_from(ctx)
    report = build_report(path, options.output_dir, options.metric, options.base, options.force, yard)
    for plot in report.plots:
        out.print(str(plot), markup=False)
    for message in report.notes:
        note(f"note: {message}")


def register(app: typer.Typer) -> None:
    """Add ``report`` to the root app."""
    app.command("report", help=report_command.__doc__)(report_command)
