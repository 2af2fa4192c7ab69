"""``tuneyard runs``: list, show, find, compare and aggregate artifacts in the yard."""

from __future__ import annotations

import typer

runs_app = typer.Typer(help="Query the yard: ls, show, compare, aggregate, reindex, import.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``runs`` group to the root app."""
    app.add_typer(runs_app, name="runs")
