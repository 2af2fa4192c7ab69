"""Shared terminal output: a stdout console for results, stderr for messages."""

from __future__ import annotations

from rich.console import Console

from tuneyard.errors import TuneyardError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_error(error: TuneyardError) -> None:
    """``error: message`` then the hint indented under it, as in git."""
    err.print(f"[bold red]error:[/] {error.message}", markup=True, highlight=False)
    if error.hint:
        for line in error.hint.splitlines():
            err.print(f"       {line}", markup=False)


def note(message: str) -> None:
    """A progress or status message on stderr (results go to stdout)."""
    err.print(message, markup=False)
