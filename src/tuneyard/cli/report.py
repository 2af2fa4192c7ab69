"""``tuneyard report``: parse flags, call :func:`tuneyard.report.build.build_report`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneyard.cli.console import note, out, quiet_libraries


def report_command(
    path: Annotated[
        Path, typer.Argument(help="A run, model, compressed model, eval grid or project folder.")
    ],
    output_dir: Annotated[
        Path | None, typer.Option(help="Folder for the PNGs (default PATH/report).")
    ] = None,
    metric: Annotated[
        str | None,
        typer.Option(
            help="Metric for the comparison chart, as in --where: sst2.accuracy (default: the most common)."
        ),
    ] = None,
    base: Annotated[
        Path | None,
        typer.Option(
            help="Original model of a compressed one, for the energy-kept plot "
            "(default: from compression_info)."
        ),
    ] = None,
) -> None:
    """Draw training curves, weight spectra and norms, grid heatmaps and run comparisons as PNGs.

    Example: tuneyard report outputs/demo/topics --metric debian_topics.accuracy
    """
    from tuneyard.report.build import build_report

    quiet_libraries()
    report = build_report(path, output_dir, metric, base)
    for plot in report.plots:
        out.print(str(plot), markup=False)
    for message in report.notes:
        note(f"note: {message}")


def register(app: typer.Typer) -> None:
    """Add ``report`` to the root app."""
    app.command("report", help=report_command.__doc__)(report_command)
