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
