"""``tuneyard prepare``: parse flags, call :func:`~tuneyard.data.prepare.prepare_dataset`, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneyard.cli.console import note, out, quiet_libraries
from tuneyard.cli.context import yard_from
from tuneyard.errors import ConfigError


def prepare(
    ctx: typer.Context,
    source: Annotated[
        str | None,
        typer.Argument(help="A hub dataset id, or a local file or folder of splits (default: the task's)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Name in the yard (default: the source's).")] = None,
    config_name: Annotated[
        str | None, typer.Option("--subset", help="Hub datasets: the configuration (subset) to load.")
    ] = None,
    revision: Annotated[str | None, typer.Option(help="Hub datasets: a branch, tag or commit.")] = None,
    split: Annotated[
        list[str] | None, typer.Option("--split", help="Keep only this split (repeat for several).")
    ] = None,
    rename: Annotated[
        list[str] | None, typer.Option("--rename", help="Rename a column: --rename sentence=text (repeat).")
    ] = None,
    num_samples: Annotated[int | None, typer.Option(help="Rows kept per split, drawn with --seed.")] = None,
    sample_percent: Annotated[
        float | None, typer.Option(help="Percent of each split kept, drawn with --seed.")
    ] = None,
    validation_fraction: Annotated[
        float | None, typer.Option(help="Carve a validation split from train when there is none.")
    ] = None,
    test_fraction: Annotated[
        float | None, typer.Option(help="Carve a test split from train when there is none.")
    ] = None,
    label_column: Annotated[
        str | None, typer.Option(help="Carved splits keep this column's proportions (default label).")
    ] = None,
    task_spec: Annotated[
        Path | None, typer.Option(help="A YAML file of tasks (seed 002's config.yaml format).")
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="With --task-spec: the task whose prompts format the rows.")
    ] = None,
    max_shard_size: Annotated[
        str | None, typer.Option(help="Largest Parquet file per split before sharding (default 500MB).")
    ] = None,
    experiment: Annotated[
        str | None,
        typer.Option(help="File under experiments/{experiment}/formatted_datasets/{name} (seed 002)."),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for sampling and carving (default 42).")] = None,
    output_dir: Annotated[Path | None, typer.Option(help="Write here instead of datasets/{name}.")] = None,
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
    from tuneyard.data.prepare import PrepareOptions, prepare_dataset

    flags = {
        "source": source,
        "name": name,
        "config": config_name,
        "revision": revision,
        "splits": split or None,
        "rename": parse_renames(rename or []) or None,
        "num_samples": num_samples,
        "sample_percent": sample_percent,
        "validation_fraction": validation_fraction,
        "test_fraction": test_fraction,
        "label_column": label_column,
        "task_spec": str(task_spec) if task_spec else None,
        "task": task,
        "max_shard_size": max_shard_size,
        "experiment": experiment,
        "seed": seed,
        "output_dir": str(output_dir) if output_dir else None,
    }
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


def parse_renames(pairs: list[str]) -> dict[str, str]:
    """``["old=new", ...]`` as a mapping; anything else is a user error."""
    renames = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ConfigError(f"--rename {pair!r} is not old=new.", "Example: --rename sentence=text")
        renames[old.strip()] = new.strip()
    return renames


def register(app: typer.Typer) -> None:
    """Add ``prepare`` to the root app."""
    app.command("prepare")(prepare)
