"""``tuneyard merge`` and ``tuneyard export``: parse flags, call :mod:`tuneyard.export`, print the result."""

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


def export(
    ctx: typer.Context,
    checkpoint: Annotated[
        Path,
        typer.Option("--checkpoint", "--model", help="A model folder, a LoRA run or a compressed model."),
    ],
    format_: Annotated[str, typer.Option("--format", help="gguf (the only format so far).")] = "gguf",
    quant: Annotated[str, typer.Option(help="GGUF tensor type: f16 (default), q8_0, bf16 or f32.")] = "f16",
    name: Annotated[
        str | None, typer.Option(help="exports/{name}_{quant}/ (default: the model's or run's name).")
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Write here instead of the yard layout path.")
    ] = None,
) -> None:
    """Write a model as a GGUF file with llama.cpp's own converter, filed under exports/.

    A LoRA run is merged first, a compressed model made dense first (each filed as a
    `merged` artifact). The converter is llama.cpp's convert_hf_to_gguf.py, pinned and
    fetched once.

    Example: tuneyard export --checkpoint outputs/demo/debian_sections_chat/smollm2_135m_lora --quant q8_0
    """
    from rich.table import Table

    from tuneyard.cli.console import note
    from tuneyard.config import resolve_options
    from tuneyard.export.gguf_export import ExportOptions, export_model

    quiet_libraries()
    flags = {
        "checkpoint": str(checkpoint),
        "format": format_,
        "quant": quant,
        "name": name,
        "output_dir": str(output_dir) if output_dir else None,
    }
    options = resolve_options(ExportOptions, flags, None, [])
    result = export_model(options, yard_from(ctx))
    for line in result.notes:
        note(f"note: {line}")
    table = Table(title=f"GGUF export of {checkpoint}", show_header=False)
    table.add_column("field")
    table.add_column("value", justify="right")
    table.add_row("type", options.quant)
    table.add_row("tensors", str(result.tensors))
    table.add_row("file size", f"{result.file.stat().st_size / 2**20:,.1f} MiB")
    table.add_row("time", f"{result.seconds:.1f} s")
    out.print(table)
    out.print(f"saved {result.file}")


def register(app: typer.Typer) -> None:
    """Add ``merge`` and ``export`` to the root app."""
    app.command("merge")(merge)
    app.command("export")(export)
