"""``tuneyard compress``: parse flags, call :func:`~tuneyard.compress.compressor.compress_model`, print."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tuneyard.cli.console import note, out, quiet_libraries
from tuneyard.cli.context import yard_from
from tuneyard.cli.data_flags import (
    ChatTemplateOpt,
    DataOpt,
    LabelColumnOpt,
    MessagesColumnOpt,
    PromptColumnOpt,
    ReferenceColumnOpt,
    ResponseColumnOpt,
    SystemColumnOpt,
    SystemPromptOpt,
    TaskOpt,
    TaskTypeOpt,
    TextColumnOpt,
    TextPairColumnOpt,
    chat_flags,
)
from tuneyard.compress.registry import METHODS

if TYPE_CHECKING:
    from tuneyard.compress.compressor import CompressionResult


def compress(
    ctx: typer.Context,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="HF hub id, local model folder or .gguf file.")
    ] = None,
    method: Annotated[
        str | None, typer.Option(help=f"One of: {', '.join(METHODS)} (default standard).")
    ] = None,
    rank: Annotated[
        str | None, typer.Option(help="Rank everywhere (64) or per type (attn=40,ffn=240).")
    ] = None,
    ratio: Annotated[
        float | None, typer.Option(help="Fraction of compressible weights kept, e.g. 0.5.")
    ] = None,
    task: TaskOpt = None,
    data: DataOpt = None,
    text_column: TextColumnOpt = None,
    text_pair_column: TextPairColumnOpt = None,
    label_column: LabelColumnOpt = None,
    task_type: TaskTypeOpt = None,
    messages_column: MessagesColumnOpt = None,
    prompt_column: PromptColumnOpt = None,
    response_column: ResponseColumnOpt = None,
    system_column: SystemColumnOpt = None,
    reference_column: ReferenceColumnOpt = None,
    system_prompt: SystemPromptOpt = None,
    chat_template: ChatTemplateOpt = None,
    calib_samples: Annotated[
        int | None, typer.Option(help="Calibration rows from train (default 256).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Calibration batch size (default 16).")] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Token length of calibration rows (default 128).")
    ] = None,
    held_out_samples: Annotated[
        int | None,
        typer.Option(
            help="Validation rows the output error (and a decoder's perplexity) is measured on (default 64)."
        ),
    ] = None,
    alpha: Annotated[float | None, typer.Option(help="asvd's activation exponent (default 0.5).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for sampling and head init (default 0).")] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Write here instead of the yard layout path.")
    ] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML file with these options.")] = None,
    overrides: Annotated[
        list[str] | None, typer.Option("--set", help="Override an option: --set rank=32.")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Factorise a model's linear layers with SVD and file it under compressed_models/.

    Example: tuneyard compress --model ./bert-sst2 --method whiten --rank 64 --task sst2

    A decoder (LLaMA, SmolLM2, GPT-2) calibrates on chat rows or plain 'text' rows and
    reports its perplexity on --held-out-samples validation rows before and after.
    """
    from tuneyard.compress.compressor import compress_model
    from tuneyard.compress.options import CompressOptions
    from tuneyard.config import resolve_options

    flags = {
        "model": model,
        "method": method,
        "rank": rank,
        "ratio": ratio,
        "task": task,
        "data": str(data) if data else None,
        "text_column": text_column,
        "text_pair_column": text_pair_column,
        "label_column": label_column,
        "task_type": task_type,
        **chat_flags(
            messages_column,
            prompt_column,
            response_column,
            system_column,
            reference_column,
            system_prompt,
            chat_template,
        ),
        "calib_samples": calib_samples,
        "held_out_samples": held_out_samples,
        "batch_size": batch_size,
        "max_length": max_length,
        "alpha": alpha,
        "seed": seed,
        "output_dir": str(output_dir) if output_dir else None,
    }
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
