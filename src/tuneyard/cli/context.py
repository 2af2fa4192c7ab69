"""Helpers every verb shares: the yard chosen by ``--yard`` / ``TUNEYARD_HOME``."""

from __future__ import annotations

import typer

from tuneyard.yard.root import Yard


def yard_from(ctx: typer.Context) -> Yard:
    """The yard for this invocation."""
    root = (ctx.find_root().obj or {}).get("yard")
    return Yard.open(root)
