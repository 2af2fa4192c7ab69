"""``tuneyard label``: parse flags, call :func:`~tuneyard.label.labeller.label_dataset`, show progress."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tuneyard.cli.console import live_progress, note, out, quiet_libraries
from tuneyard.cli.context import yard_from
from tuneyard.cli.options_cli import with_model_options
from tuneyard.label.options import LabelOptions

if TYPE_CHECKING:
    from tuneyard.label.labeller import Tally


@with_model_options(LabelOptions)
def label(
    ctx: typer.Context,
    flags: dict[str, Any],
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Insist on continuing an interrupted job (a rerun resumes anyway)."),
    ] = False,
    config: Annotated[Path | None, typer.Option("--config", help="YAML file with these options.")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override an option.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the folder only.")] = False,
) -> None:
    """Label a dataset with a teacher model behind any OpenAI-compatible API, filed as a new dataset.

    Example: tuneyard label --data packages --teacher gpt-4o-mini --base-url https://api.openai.com/v1
    --prompt 'Debian section of: {{ text }}' --choices games,graphics,net,science,sound,text

    The key comes from $OPENAI_API_KEY (or --api-key-env NAME) and is never written anywhere.

    Each result is journalled as it arrives: after Ctrl-C or a crash, the same command asks the rest.

    Rows end labelled, rejected (rejected.jsonl) or failed (failed.jsonl), each with its reason.
    """

    from tuneyard.config import resolve_options
    from tuneyard.label.labeller import label_dataset

    options = resolve_options(LabelOptions, flags, config, overrides or [])
    quiet_libraries()
    with progress_display(quiet) as on_row:
        labelled = label_dataset(options, yard_from(ctx), on_row=on_row, resume=resume)
    if not quiet:
        summarize(labelled.tally, labelled.dropped)
    if labelled.renamed:
        note(f"note: a dataset of that name exists; this one is {labelled.path.name}.")
    out.print(str(labelled.path))


@contextmanager
def progress_display(quiet: bool) -> Iterator[Callable[[Tally], None]]:
    """A progress bar on stderr: rows done of all, rows/s, failures, running cost."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("labelling"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
    )  # fmt: skip
    with live_progress(quiet, *columns) as progress:
        if progress is None:
            yield lambda tally: None
            return
        task = progress.add_task("labelling", total=None, rate="", status="")

        def on_row(tally: Tally) -> None:
            speed = progress.tasks[task].speed
            progress.update(
                task,
                total=tally.total,
                completed=tally.labelled + tally.rejected + tally.failed,
                rate=f"{speed:.1f} rows/s" if speed else "",
                status=status_line(tally),
            )

        yield on_row


def status_line(tally: Tally) -> str:
    """Failures, rejections and the running cost, in one line."""
    parts = [f"{tally.failed} failed", f"{tally.rejected} rejected"]
    if tally.cost is not None:
        parts.append(f"cost {tally.cost:.4f}")
    else:
        parts.append(f"{tally.prompt_tokens + tally.completion_tokens:,} tokens")
    return ", ".join(parts)


def summarize(tally: Tally, dropped: list[str]) -> None:
    """The job's outcome in three lines on stderr."""
    from tuneyard.label.output import refused_options

    note(
        f"{tally.labelled} labelled, {tally.rejected} rejected, {tally.failed} failed"
        + (f" ({tally.from_journal} from an earlier run's journal)" if tally.from_journal else "")
    )
    tokens = f"{tally.prompt_tokens:,} prompt + {tally.completion_tokens:,} completion tokens"
    note(
        f"{tally.requests} requests, {tokens}"
        + (f", cost {tally.cost:.4f}" if tally.cost is not None else "")
    )
    if dropped:
        note(f"note: request options the server refused: {refused_options(dropped)}.")
    if tally.failed:
        note("note: run the same command again to ask the failed rows again.")


def register(app: typer.Typer) -> None:
    """Add ``label`` to the root app."""
    app.command("label")(label)
