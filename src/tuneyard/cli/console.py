"""Shared terminal output: a stdout console for results, stderr for messages."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from rich.console import Console

from tuneyard.errors import TuneyardError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


if TYPE_CHECKING:
    from rich.progress import Progress


@contextmanager
def live_progress(quiet: bool, *columns: Any) -> Iterator[Progress | None]:
    """A transient rich progress display on stderr with ``columns``; None with ``--quiet`` or no terminal."""
    if quiet or not err.is_terminal:
        yield None
        return
    from rich.progress import Progress

    with Progress(*columns, console=err, transient=True) as progress:
        yield progress


def print_error(error: TuneyardError) -> None:
    """``error: message`` then the hint indented under it, as in git."""
    err.print(f"[bold red]error:[/] {error.message}", markup=True, highlight=False)
    if error.hint:
        for line in error.hint.splitlines():
            err.print(f"       {line}", markup=False)


def note(message: str) -> None:
    """A progress or status message on stderr (results go to stdout)."""
    err.print(message, markup=False)


def quiet_libraries() -> None:
    """Keep stderr for tuneyard's own progress: no per-library progress bars or info logs.

    Called by the verbs that load models (not at import, so ``runs`` stays fast).
    """
    import warnings

    import datasets
    import transformers

    # Raised by PEFT calling a deprecated transformers helper; nothing a user can act on.
    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
