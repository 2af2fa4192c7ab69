"""``tuneyard compress``: parse flags, call :func:`~tuneyard.compress.compressor.compress_model`, print."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tuneyard.cli.console import note, out, quiet_libraries
from tuneyard.cli.context import yard_from
from tuneyard.cli.options_cli import with_model_options
from tuneyard.compress.options import CompressOptions

if TYPE_CHECKING:
    from tuneyard.compress.compressor import CompressionResult


@with_model_options(CompressOptions)
def compress(
    ctx: typer.Context,
    flags: dict[str, Any],
    config: Annotated[Path | None, typer.Option("--config", help="YAML file with these options.")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override an option: --set rank=32.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Factorise a model's linear layers with SVD and file it under compressed_models/.

    Example: tuneyard compress --checkpoint ./bert-sst2 --method whiten --rank 64 --task sst2

    A decoder (LLaMA, SmolLM2, GPT-2) calibrates on chat rows or plain 'text' rows and
    reports its perplexity on --held-out-samples validation rows before and after.
    """
    from tuneyard.compress.compressor import compress_model
    from tuneyard.config import resolve_options

    options = resolve_options(CompressOptions, flags, config, overrides or [])
    quiet_libraries()
    result = compress_model(options, yard_from(ctx), progress=not quiet)
    for line in result.notes:
        note(f"note: {line}")
    print_summary(result)


def print_summary(result: CompressionResult) -> None:
    """The table users read: layers compressed, weights before/after, ratio, time."""
    from rich.table import Table

    info = result.info
    params = info.params
    ranks = sorted({layer.rank for layer in info.layers.values()})
    rank_text = str(ranks[0]) if len(ranks) == 1 else f"{ranks[0]}-{ranks[-1]} (per layer)"
    table = Table(title=f"{info.method} compression of {info.base_model}", show_header=False)
    table.add_column("field")
    table.add_column("value", justify="right")
    table.add_row("layers compressed", f"{len(info.layers)} of {len(info.layers) + len(info.dense_layers)}")
    table.add_row("rank", rank_text if ranks else "-")
    table.add_row("params before", f"{params.total_before:,}")
    table.add_row("params after", f"{params.total_after:,}")
    table.add_row("compressible kept", f"{params.ratio:.3f}")
    table.add_row("whole model kept", f"{params.total_after / max(params.total_before, 1):.3f}")
    for metric, before, after in result.held_out:
        digits = 4 if metric == "output error" else 2
        table.add_row(f"held-out {metric}", f"{before:.{digits}f} -> {after:.{digits}f}")
    table.add_row("time", f"{result.seconds:.1f} s")
    out.print(table)
    out.print(f"saved {result.path}")


def register(app: typer.Typer) -> None:
    """Add ``compress`` to the root app."""
    app.command("compress")(compress)
