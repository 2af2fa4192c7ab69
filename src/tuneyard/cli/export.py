"""``tuneyard merge``: parse flags, call :func:`tuneyard.export.merge.merge_model`, print what it made."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tuneyard.cli.console import out, quiet_libraries
from tuneyard.cli.context import yard_from


def merge(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path,
        typer.Option(
            "--checkpoint",
            "--model",
            help="A LoRA run (its folder or best/), an adapter, or a compressed model.",
        ),
    ],
    dense: Annotated[
        bool, typer.Option("--dense", help="Multiply a compressed model's factors back into dense layers.")
    ] = False,
    name: Annotated[
        str | None, typer.Option(help="Folder name under models/merged/{arch}/ (default: the run's).")
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Write here instead of the yard layout path.")
    ] = None,
) -> None:
    """Fold a LoRA adapter into its base (or a compressed model's factors, --dense) as a plain model folder.

    The merged model is checked against the source on a probe sentence before anything is
    written, and filed as a `merged` artifact whose parents are the run and the base.

    Example: tuneyard merge --checkpoint outputs/demo/debian_sections_chat/smollm2_135m_lora
    """
    from rich.table import Table

    from tuneyard.export.merge import MergeOptions, merge_model

    quiet_libraries()
    options = MergeOptions(
        checkpoint=str(checkpoint), dense=dense, name=name, output_dir=str(output_dir) if output_dir else None
    )
    result = merge_model(options, yard_from(ctx))
    table = Table(title=f"merge of {checkpoint}", show_header=False)
    table.add_column("field")
    table.add_column("value", justify="right")
    table.add_row("folded in", f"{result.layers} {'LoRA' if result.source == 'lora' else 'low-rank'} layers")
    table.add_row("parameters", f"{result.params:,}")
    table.add_row("max logit difference", f"{result.max_logit_difference:.2e}")
    table.add_row("time", f"{result.seconds:.1f} s")
    out.print(table)
    out.print(f"saved {result.path}")


def register(app: typer.Typer) -> None:
    """Add ``merge`` to the root app."""
    app.command("merge")(merge)
