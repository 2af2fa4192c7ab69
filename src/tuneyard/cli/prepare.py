"""``tuneyard prepare``: parse flags, call :func:`~tuneyard.data.prepare.prepare_dataset`, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tuneyard.cli.console import note, out, quiet_libraries
from tuneyard.cli.context import yard_from
from tuneyard.cli.options_cli import with_model_options
from tuneyard.data.prepare import PrepareOptions


@with_model_options(PrepareOptions, exclude=("source",))
def prepare(
    ctx: typer.Context,
    flags: dict[str, Any],
    source: Annotated[
        str | None,
        typer.Argument(help="A hub dataset id, or a local file or folder of splits (default: the task's)."),
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML file with these options.")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override an option.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the folder only.")] = False,
) -> None:
    """Load a dataset, reshape it, and file it under datasets/{name} with a dataset card.

    Example: tuneyard prepare data/debian_topics --name topics_small --num-samples 200

    More: tuneyard prepare ./reviews.csv --validation-fraction 0.1 --test-fraction 0.1 --rename review=text;
    tuneyard prepare glue --subset sst2 --split train --split validation;
    tuneyard prepare data/debian_topics --task-spec tasks.yaml --task sections (chat rows).
    Then: tuneyard finetune --data topics_small ...
    """
    from tuneyard.config import resolve_options
    from tuneyard.data.prepare import prepare_dataset

    if source is not None:
        flags["source"] = source
    options = resolve_options(PrepareOptions, flags, config, overrides or [])
    quiet_libraries()
    prepared = prepare_dataset(options, yard_from(ctx))
    if prepared.renamed:
        note(f"note: a dataset named {options.dataset_name()} exists; this one is {prepared.path.name}.")
    if not quiet:
        for split_name, rows in prepared.rows.items():
            note(f"{split_name}: {rows:,} rows")
        note(f"content hash {prepared.content_hash[:16]}...")
    out.print(str(prepared.path))


def register(app: typer.Typer) -> None:
    """Add ``prepare`` to the root app."""
    app.command("prepare")(prepare)
