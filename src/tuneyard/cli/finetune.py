"""``tuneyard finetune``: parse flags, call :mod:`tuneyard.train.recipe`, report what happened."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tuneyard.cli.console import err, note, out, quiet_libraries
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
from tuneyard.train.strategies import STRATEGIES, default_rates

HELP = """Fine-tune a model (full, frozen, LoRA on chosen layers, or a compressed model's factors).

Classification data (text, label) trains a classifier.
Chat data (messages, or prompt and response columns) trains a decoder on the answers.

Example: tuneyard finetune --checkpoint ./minilm --data ./topics --strategy lora --lora-layers 0-2
"""


def _lora_flags(
    r: int | None, alpha: int | None, dropout: float | None, targets: str | None, layers: str | None
) -> dict[str, Any]:
    values = {
        "r": r,
        "alpha": alpha,
        "dropout": dropout,
        "layers": layers,
        "targets": [t.strip() for t in targets.split(",") if t.strip()] if targets else None,
    }
    return {key: value for key, value in values.items() if value is not None}


def finetune(
    ctx: typer.Context,
    run_path: Annotated[
        Path | None, typer.Argument(help="With --resume: the run folder to continue.")
    ] = None,
    checkpoint: Annotated[
        str | None, typer.Option(help="Model folder (plain, compressed), a .gguf file or a hub id.")
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
    strategy: Annotated[
        str | None,
        typer.Option(help=f"{' | '.join(STRATEGIES)} (default: lowrank for compressed models, else full)."),
    ] = None,
    lora_r: Annotated[int | None, typer.Option(help="LoRA rank.")] = None,
    lora_alpha: Annotated[int | None, typer.Option(help="LoRA alpha (scaling).")] = None,
    lora_dropout: Annotated[float | None, typer.Option(help="LoRA dropout.")] = None,
    lora_targets: Annotated[
        str | None, typer.Option(help="Comma-separated module names (default: the family table's).")
    ] = None,
    lora_layers: Annotated[
        str | None, typer.Option(help="Layers that get adapters: 0,1,2 or 7-12 or a mix.")
    ] = None,
    freeze_factors: Annotated[
        bool | None,
        typer.Option(
            "--freeze-factors", help="Compressed models: keep the low-rank factors fixed, train the rest."
        ),
    ] = None,
    reset_head: Annotated[
        bool | None,
        typer.Option(
            "--reset-head", help="Replace a classifier head whose label count does not match the task."
        ),
    ] = None,
    distill_from: Annotated[
        str | None,
        typer.Option(
            help="Also learn this model's logits (a fine-tuned model with the same labels or vocabulary). "
            "Default for a compressed checkpoint: the fine-tuned model it was compressed from."
        ),
    ] = None,
    no_distill: Annotated[
        bool | None,
        typer.Option("--no-distill", help="Train on the labels alone (no default teacher)."),
    ] = None,
    distill_weight: Annotated[
        float | None, typer.Option(help="With a teacher: its logits' share of the loss (default 0.5).")
    ] = None,
    distill_temperature: Annotated[
        float | None, typer.Option(help="With a teacher: softmax temperature (default 2).")
    ] = None,
    distill_hidden_weight: Annotated[
        float | None,
        typer.Option(help="With a teacher: weight of matching each layer's output to its (default 0: off)."),
    ] = None,
    epochs: Annotated[float | None, typer.Option(help="Training epochs (default 3).")] = None,
    learning_rate: Annotated[
        float | None,
        typer.Option(help=f"Peak learning rate (default per strategy: {default_rates()})."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Per-device batch size (default 16).")] = None,
    grad_accum: Annotated[int | None, typer.Option(help="Gradient accumulation steps.")] = None,
    max_length: Annotated[
        int | None, typer.Option(help="Truncate inputs to this many tokens (default 128).")
    ] = None,
    packing: Annotated[
        bool | None, typer.Option("--packing", help="Chat data: pack rows into --max-length sequences (TRL).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed for the head, data order and dropout (default 42).")
    ] = None,
    save_steps: Annotated[
        int | None, typer.Option(help="Evaluate and checkpoint every N steps (default: every epoch).")
    ] = None,
    keep: Annotated[int | None, typer.Option(help="Checkpoints to keep (default 2).")] = None,
    metric_for_best: Annotated[
        str | None, typer.Option(help="Metric that picks best/ (default: the task's main metric).")
    ] = None,
    precision: Annotated[str | None, typer.Option(help="Mixed precision: no | fp16 | bf16.")] = None,
    report_to: Annotated[
        str | None,
        typer.Option(help="Also log to: wandb, mlflow (comma-separated; tensorboard/ is always written)."),
    ] = None,
    output_dir: Annotated[
        Path | None, typer.Option(help="Exact run folder instead of the yard layout.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Run name (the last folder of the layout).")] = None,
    project: Annotated[
        str | None, typer.Option(help="File under outputs/{project}/{dataset}/{name}.")
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
    from tuneyard.train.options import FinetuneOptions

    if run_path is not None and not resume:
        raise TrainingError(
            f"unexpected argument {str(run_path)!r}.", "To continue a run: --resume RUN_PATH."
        )
    yard = yard_from(ctx)
    flags = {
        "checkpoint": checkpoint,
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
        "strategy": strategy,
        "lora": _lora_flags(lora_r, lora_alpha, lora_dropout, lora_targets, lora_layers) or None,
        "freeze_factors": freeze_factors,
        "reset_head": reset_head,
        "distill_from": distill_from,
        "no_distill": no_distill,
        "distill": {
            key: value
            for key, value in (
                ("weight", distill_weight),
                ("temperature", distill_temperature),
                ("hidden_weight", distill_hidden_weight),
            )
            if value is not None
        }
        or None,
        "epochs": epochs,
        "learning_rate": learning_rate,
        "batch_size": batch_size,
        "grad_accum": grad_accum,
        "max_length": max_length,
        "packing": packing,
        "seed": seed,
        "save_steps": save_steps,
        "keep": keep,
        "metric_for_best": metric_for_best,
        "precision": precision,
        "report_to": [t.strip() for t in report_to.split(",") if t.strip()] if report_to else None,
        "output_dir": str(output_dir) if output_dir else None,
        "name": name,
        "project": project,
    }
    quiet_libraries()
    from tuneyard.train.progress import RichProgress
    from tuneyard.train.recipe import prepare_finetune

    if run_path is not None:
        given = [key for key, value in flags.items() if value is not None] + (["--config"] if config else [])
        if given:
            note(f"note: resuming with the run's saved config.yaml; ignoring {', '.join(given)}.")
        prepared = prepare_finetune(None, yard, resume=run_path.expanduser().resolve())
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
