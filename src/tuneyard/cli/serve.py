"""``tuneyard serve``: parse flags, run :func:`tuneyard.serve.app.create_app` under uvicorn."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tuneyard.cli.console import note
from tuneyard.cli.context import yard_from
from tuneyard.cli.options_cli import with_model_options
from tuneyard.serve.options import LOOPBACK, ServeOptions


@with_model_options(ServeOptions)
def serve_command(
    ctx: typer.Context,
    flags: dict[str, Any],
    config: Annotated[Path | None, typer.Option("--config", help="YAML file with these options.")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override an option: --set port=8800.")
    ] = None,
) -> None:
    """Browse the yard in a web browser, read-only: runs table, artifact pages, compare, JSON API.

    Example: tuneyard --yard ~/yard serve --port 8765

    A yard on S3 (--yard s3://bucket/prefix) is served from this machine's copy, its index
    brought up to date with the bucket every few seconds, so another machine's runs show up.
    """
    from tuneyard.config import resolve_options
    from tuneyard.serve.server import prepared_app, run

    options = resolve_options(ServeOptions, flags, config, overrides or [])
    yard = yard_from(ctx)
    address = yard.address  # a folder, or the URL of a yard on shared storage
    app = prepared_app(yard, options)
    if options.host != LOOPBACK:
        note(f"note: listening on {options.host}: anyone who can reach it sees the whole yard (no login).")
    note(f"serving {address} read-only at http://{options.host}:{options.port}/ (Ctrl-C stops)")
    run(app, options)


def register(app: typer.Typer) -> None:
    """Add ``serve`` to the root app."""
    app.command("serve", help=serve_command.__doc__)(serve_command)
