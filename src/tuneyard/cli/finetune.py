"""``tuneyard finetune``: parse flags, call :mod:`tuneyard.train.recipe`, report what happened."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tuneyard.cli.console import err, note, out, quiet_libraries
from tuneyard.cli.context import yard_from
from tuneyard.cli.options_cli import with_model_options
from tuneyard.train.options import FinetuneOptions

HELP = """Fine-tune a model (full, frozen, LoRA on chosen layers, adapters, or a compressed model's factors).

Classification data (text, label) trains a classifier.
Chat data (messages, or prompt and response columns) trains a decoder on the answers.

Example: tuneyard finetune --checkpoint ./minilm --data ./topics --strategy lora --lora-layers 0-2
"""


@with_model_options(FinetuneOptions)
def finetune(
    ctx: typer.Context,
    flags: dict[str, Any],
    run_path: Annotated[
        Path | None, typer.Argument(help="With --resume: the run folder to continue.")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume", help="Continue RUN_PATH (or the run these flags lead to) from its newest checkpoint."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar; log lines only.")] = False,
    config: Annotated[
        Path | None, typer.Option("--config", help="YAML file with any of these options.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a field: --set lora.r=16, --set trainer.lr_scheduler_type=cosine."
        ),
    ] = None,
) -> None:
    """Fine-tune a model and file the run in the yard.

    Example: tuneyard finetune --checkpoint ./minilm --data ./topics --strategy lora --lora-layers 0-2
    """
    from tuneyard.config import resolve_options
    from tuneyard.errors import TrainingError

    if run_path is not None and not resume:
        raise TrainingError(
            f"unexpected argument {str(run_path)!r}.", "To continue a run: --resume RUN_PATH."
        )
    yard = yard_from(ctx)
    quiet_libraries()
    from tuneyard.train.progress import RichProgress
    from tuneyard.train.recipe import prepare_finetune

    if run_path is not None:
        given = list(flags) + (["--config"] if config else [])
        if given:
            note(f"note: resuming with the run's saved config.yaml; ignoring {', '.join(given)}.")
        prepared = prepare_finetune(None, yard, resume=run_path.expanduser())
    else:
        options = resolve_options(FinetuneOptions, flags, config, set_ or ())
        prepared = prepare_finetune(options, yard, resume=resume)
    _report_plan(prepared)
    result = prepared.train([RichProgress(err, metric=prepared.metric, quiet=quiet)])
    if not prepared.run:  # another rank of a distributed run: rank 0 reports
        return
    if result.interrupted:
        note(f"stopped at step {result.stopped_at_step} after saving a checkpoint.")
        note(f"resume with: tuneyard finetune --resume {result.path}")
        sys.exit(130)
    _report_result(prepared, result)


def _report_plan(prepared: Any) -> None:
    if not prepared.run:
        return
    data = prepared.data
    if data.carved_validation:
        fraction = prepared.options.validation_fraction
        note(
            f"note: {data.source} has no validation split; using {fraction:.0%} of train "
            f"(seed {prepared.options.seed}) as validation."
        )
    for line in prepared.notes:
        note(line)
    if prepared.renamed:
        note(f"note: {prepared.run.requested_path} exists; this run is {prepared.run_dir.name} instead.")
    if prepared.resumed:
        start = prepared.resume_from.name if prepared.resume_from else "the start (no complete checkpoint)"
        note(f"resuming {prepared.run_dir} from {start}")
    trainable, total = prepared.parameter_counts
    note(
        f"strategy {prepared.strategy.NAME}: trainable parameters {trainable:,} / {total:,} "
        f"({100 * trainable / max(total, 1):.2f}%)"
    )
    note(f"run: {prepared.run_dir}")


def _report_result(prepared: Any, result: Any) -> None:
    metric = prepared.metric
    best = result.best_metrics.get(metric)
    last = result.last_metrics.get(metric)
    if best is not None:
        note(
            f"best {metric} {best:.4f}, last {last:.4f}" if last is not None else f"best {metric} {best:.4f}"
        )
    note(f"best: {result.path / 'best'}")
    note(f"last: {result.path / 'last'}")
    out.print(str(result.path))


def register(app: typer.Typer) -> None:
    """Add ``finetune`` to the root app."""
    app.command("finetune", help=HELP)(finetune)
