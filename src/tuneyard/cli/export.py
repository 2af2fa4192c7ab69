"""``tuneyard merge`` and ``tuneyard export``: parse flags, call :mod:`tuneyard.export`, print the result."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tuneyard.cli.console import out, quiet_libraries
from tuneyard.cli.context import yard_from
from tuneyard.cli.evaluate import QuietOption
from tuneyard.cli.options_cli import with_model_options
from tuneyard.cli.validate import run_validation
from tuneyard.export.agreement import ValidateOptions
from tuneyard.export.exporter import ExportOptions
from tuneyard.export.merge import MergeOptions


@with_model_options(MergeOptions)
def merge(ctx: typer.Context, flags: dict[str, Any]) -> None:
    """Fold a LoRA adapter into its base (or a compressed model's factors, --dense) as a plain model folder.

    The merged model is checked against the source on a probe sentence before anything is
    written, and filed as a `merged` artifact whose parents are the run and the base.

    Example: tuneyard merge --checkpoint outputs/demo/debian_sections_chat/smollm2_135m_lora
    """
    from rich.table import Table

    from tuneyard.config import resolve_options
    from tuneyard.export.merge import merge_model

    options = resolve_options(MergeOptions, flags)
    quiet_libraries()
    result = merge_model(options, yard_from(ctx))
    table = Table(title=f"merge of {options.checkpoint}", show_header=False)
    table.add_column("field")
    table.add_column("value", justify="right")
    table.add_row("folded in", f"{result.layers} {'LoRA' if result.source == 'lora' else 'low-rank'} layers")
    table.add_row("parameters", f"{result.params:,}")
    table.add_row("max logit difference", f"{result.max_logit_difference:.2e}")
    table.add_row("time", f"{result.seconds:.1f} s")
    out.print(table)
    out.print(f"saved {result.path}")


@with_model_options(ExportOptions)
@with_model_options(ValidateOptions, into="checks")
def export(
    ctx: typer.Context,
    flags: dict[str, Any],
    checks: dict[str, Any],
    validate: Annotated[
        bool,
        typer.Option(
            "--validate/--no-validate",
            help="GGUF: run the file in llama.cpp and compare it with its source (see tuneyard validate).",
        ),
    ] = True,
    quiet: QuietOption = False,
) -> None:
    """Write a model as a GGUF file with llama.cpp's own tools, or a plain safetensors folder, in exports/.

    A LoRA run is merged first, a compressed model made dense first (each filed as a
    `merged` artifact). GGUF files are written by llama.cpp's convert_hf_to_gguf.py (pinned,
    fetched once); the types it lacks (see --quant) are then made by llama.cpp's quantizer
    (llama-cpp-python). --format safetensors copies the model folder (weights, config,
    tokenizer, chat template) for runtimes that read Hugging Face folders. As GGUF, a
    vision-language model (a config with a vision_config) also gets its multimodal projector
    (mmproj-{name}-f16.gguf, the converter's --mmproj), validated through llama.cpp's mtmd.

    A GGUF export is then validated in llama.cpp against its source on the run's
    validation rows (or --data), as `tuneyard validate` does; with --min-accuracy it is a
    release gate (exit 1, the export marked failed). Before anything is written, the
    validation's needs are checked (llama.cpp installed, data found).

    Example: tuneyard export --checkpoint outputs/demo/debian_sections_chat/smollm2_135m_lora --quant q4_k_m
    """
    from rich.table import Table

    from tuneyard.cli.console import note
    from tuneyard.config import resolve_options
    from tuneyard.export.agreement import check_ready
    from tuneyard.export.exporter import export_model
    from tuneyard.models.loading import resolve_model_folder

    quiet_libraries()
    options = resolve_options(ExportOptions, flags)
    yard = yard_from(ctx)
    validation = None
    if validate and options.format == "gguf":
        validation = resolve_options(ValidateOptions, checks)
        check_ready(validation, yard, resolve_model_folder(options.checkpoint))
    result = export_model(options, yard)
    for line in result.notes:
        note(f"note: {line}")
    title = "GGUF export" if options.format == "gguf" else "safetensors export"
    table = Table(title=f"{title} of {options.checkpoint}", show_header=False)
    table.add_column("field")
    table.add_column("value", justify="right")
    if options.quant:
        table.add_row("type", options.quant)
    table.add_row("tensors", str(result.tensors))
    table.add_row("file size" if options.quant else "size", f"{result.file_bytes / 2**20:,.1f} MiB")
    if result.projector is not None:
        table.add_row("projector (mmproj, f16)", f"{result.projector_bytes / 2**20:,.1f} MiB")
    table.add_row("time", f"{result.seconds:.1f} s")
    out.print(table)
    if validation is not None:
        run_validation(ctx, [result.path], validation, quiet)
    out.print(f"saved {result.file}")


def register(app: typer.Typer) -> None:
    """Add ``merge`` and ``export`` to the root app."""
    app.command("merge")(merge)
    app.command("export")(export)
