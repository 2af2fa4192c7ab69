"""``tuneyard eval``, ``grade`` and ``eval-grid``: parse flags, call :mod:`tuneyard.evaluate`."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from tuneyard.cli.console import live_progress, note, out, quiet_libraries
from tuneyard.cli.context import yard_from
from tuneyard.cli.options_cli import with_model_options
from tuneyard.evaluate.grade_file import GradeOptions
from tuneyard.evaluate.options import EvalOptions, GenerateOptions, GridOptions
from tuneyard.evaluate.win_rate import WinRateOptions
from tuneyard.task_types.data_loading import load_data

ConfigOption = Annotated[Path | None, typer.Option("--config", help="YAML file with any of these options.")]
SetOption = Annotated[list[str] | None, typer.Option("--set", help="Override a field: --set batch_size=64.")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]


@contextmanager
def progress_bar(description: str, total: int | None, quiet: bool) -> Iterator[Callable[[int], None]]:
    """A rich progress bar on stderr; yields ``advance(n)`` (a no-op with ``--quiet`` or no terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with live_progress(quiet, *columns) as progress:
        if progress is None:
            yield lambda n: None
            return
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _print_scores(metrics: dict[str, Any], main_metric: str) -> None:
    from tuneyard.cli.output import format_table

    rows = [[name + (" *" if name == main_metric else ""), value] for name, value in metrics.items()]
    out.print(format_table(["metric", "value"], rows), end="", markup=False)


@with_model_options(EvalOptions)
def eval_command(
    ctx: typer.Context,
    flags: dict[str, Any],
    quiet: QuietOption = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Evaluate a model on a task split and file the results next to the model.

    A classifier is scored on its predicted labels.
    A causal LM on chat data generates each answer, graded by --grader against the reference.

    With --backend server the answers come from an OpenAI-compatible server instead of a model
    loaded here: tuneyard starts llama.cpp's server for a .gguf file (vLLM's for a model folder
    where vLLM and a GPU are present), or asks --server-url. Prompts are rendered here with the
    model's chat template, answers are greedy and graded as in-process ones; results are filed
    as served_{task}_{split}, beside the in-process ones. The API key is read from --api-key-env.

    Example: tuneyard eval --checkpoint outputs/demo/topics/bert_full/best --data ./topics --split test

    Example: tuneyard eval --checkpoint model.gguf --data ./chat --backend server --server-arg n_ctx=4096
    """
    from tuneyard.config import resolve_options
    from tuneyard.errors import DataError

    options = resolve_options(EvalOptions, flags, config, set_ or ())
    if (options.task is None) == (options.data is None):
        raise DataError(
            "give exactly one of --task NAME or --data DIR.", "Example: --task sst2, or --data ./topics"
        )
    yard = yard_from(ctx)
    quiet_libraries()
    from tuneyard.evaluate.model_eval import evaluate_model

    task_data = load_data(options.in_yard(yard))
    total = min(len(task_data.split(options.split)), options.nb_eval_samples or sys.maxsize)
    with progress_bar(f"eval {task_data.spec.name}/{options.split}", total, quiet) as advance:
        outcome = evaluate_model(
            options.checkpoint,
            task_data,
            yard,
            split=options.split,
            output_dir=options.output_dir,
            batch_size=options.batch_size,
            max_length=options.max_length,
            device=options.device,
            progress=advance,
            answers=options.answers,
            samples=options.nb_eval_samples,
            server=options.server,
        )
    result = outcome.result
    _print_scores(result.metrics, result.main_metric)
    speed = result.throughput
    rates = "".join(
        f", {value:.1f} {unit.replace('_', ' ')}"
        for unit, value in speed.rates().items()
        if unit.endswith("_second")
    )
    memory = "" if options.server.served else f", peak memory {speed.peak_memory_mb:.0f} MiB"
    note(
        f"{speed.samples} examples in {speed.seconds:.2f} s "
        f"({speed.samples_per_second:.1f} samples/s{rates}) on {speed.device}{memory}"
    )
    note(f"results: {outcome.folder}")
    if outcome.artifact is not None:
        note(f"manifest: {outcome.artifact / 'manifest.json'} (metrics.{outcome.metrics_key})")


@with_model_options(GradeOptions)
def grade_command(
    ctx: typer.Context,
    flags: dict[str, Any],
    format_: Annotated[str, typer.Option("--format", help="table | json.")] = "table",
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Grade generated answers against references; print a summary, log every sample.

    Example: tuneyard grade --predictions answers.jsonl --grader json --fields name,year
    """
    from tuneyard.cli.output import format_table
    from tuneyard.config import resolve_options
    from tuneyard.errors import EvaluationError
    from tuneyard.evaluate.grade_file import grade_file

    if format_ not in ("table", "json"):
        raise EvaluationError(f"--format {format_!r} is not known.", "Use --format table or --format json.")
    options = resolve_options(GradeOptions, flags, config, set_ or ())
    summary, folder = grade_file(
        Path(options.predictions),
        options.grader,
        options.fields,
        options.pattern,
        options.choices,
        Path(options.output_dir) if options.output_dir else None,
    )
    if format_ == "json":
        import json
        from dataclasses import asdict

        out.print(json.dumps({**asdict(summary), "logs": str(folder)}, indent=2), markup=False)
    else:
        rows: list[list[Any]] = [
            ["grader", summary.grader],
            ["samples", summary.samples],
            ["score", summary.score],
            ["unparsable", summary.unparsable],
            ["score (parsable only)", summary.score_parsed],
        ]
        rows += [[f"field {name}", accuracy] for name, accuracy in summary.field_accuracy.items()]
        out.print(format_table(["", "value"], rows), end="", markup=False)
    note(f"per-sample logs: {folder}")


MULTI_VALUE_FLAGS = ("--models", "--tasks")


def multi_value_flags(args: list[str]) -> dict[str, list[str]]:
    """``--models A B C --tasks t1 t2`` -> lists; click options take one value each, so parse here."""
    from tuneyard.errors import ConfigError

    values: dict[str, list[str]] = {}
    current: str | None = None
    for token in args:
        if token.startswith("--"):
            flag, _, inline = token.partition("=")
            if flag not in MULTI_VALUE_FLAGS:
                raise ConfigError(f"unknown option {flag!r}.", "See tuneyard eval-grid --help.")
            current = flag
            values.setdefault(flag.lstrip("-"), [])
            if inline:
                values[flag.lstrip("-")].append(inline)
        elif current is None:
            raise ConfigError(
                f"unexpected argument {token!r}.", "Give models after --models and tasks after --tasks."
            )
        else:
            values[current.lstrip("-")].append(token)
    return values


@with_model_options(GridOptions, exclude=("models", "tasks"))
def eval_grid_command(
    ctx: typer.Context,
    flags: dict[str, Any],
    quiet: QuietOption = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Evaluate every model on every task; resumable, with a results JSON and a heatmap.

    Every two models are then compared row by row on each task (eval_grid_paired.csv:
    paired difference, bootstrap interval, McNemar's exact p-value).

    --models A B C and --tasks t1 t2 (GLUE names or data folders) take several values each,
    or come from --config grid.yaml (keys models:, tasks:). Cells already done are skipped.

    Chat tasks are generated and graded: --set answers.grader=choice, answers.max_new_tokens=16 ...

    Exits with 1 when a cell failed (its error is printed and kept in the results file).

    Example: tuneyard eval-grid --models runs/a runs/b --tasks ./topics ./interface --experiment transfer
    """
    from tuneyard.cli.output import format_table
    from tuneyard.config import resolve_options

    flags.update(multi_value_flags(list(ctx.args)))
    options = resolve_options(GridOptions, flags, config, set_ or ())
    yard = yard_from(ctx)
    quiet_libraries()
    from tuneyard.evaluate.transfer_grid import run_grid

    with progress_bar("grid cells", len(options.models) * len(options.tasks), quiet) as advance:

        def on_cell(number: int, total: int, model: str, task: str, state: str) -> None:
            words = {"skipped": "done earlier, skipped", "complete": "evaluated", "failed": "failed"}
            note(f"[{number}/{total}] {model} x {task}: {words[state]}")
            advance(1)

        result = run_grid(options, yard, on_cell)
    rows = []
    for model in result.models:
        row: list[Any] = [model.label]
        for task in result.tasks:
            cell = result.cells.get((model.key, task.key))
            row.append(
                None
                if cell is None or cell.status != "complete"
                else cell.metrics.get(cell.main_metric or "")
            )
        rows.append(row)
    out.print(format_table(["model", *(task.label for task in result.tasks)], rows), end="", markup=False)
    failed = [cell for cell in result.cells.values() if cell.status == "failed"]
    for cell in failed:
        note(f"failed: {cell.model} x {cell.task}: {cell.error}")
    note(f"computed {result.computed} cell(s); results: {result.folder / 'eval_grid_results.json'}")
    if result.paired is not None:
        note(f"every two models row by row (difference, bootstrap interval, McNemar p): {result.paired}")
    if failed:
        sys.exit(1)


@with_model_options(GenerateOptions)
def generate_command(
    ctx: typer.Context,
    flags: dict[str, Any],
    quiet: QuietOption = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Generate a causal LM's answers to a chat split and file them next to the model.

    Answers go to generations/{task}_{split}/predictions.jsonl.
    Grade them with `tuneyard grade`, or generate and grade at once with `tuneyard eval`.

    Example: tuneyard generate --checkpoint models/finetuned/llama/lora/smollm2 --data ./chat --split test
    """
    from tuneyard.config import resolve_options

    options = resolve_options(GenerateOptions, flags, config, set_ or ())
    yard = yard_from(ctx)
    quiet_libraries()
    from tuneyard.evaluate.generate import generate

    task_data = load_data(options.in_yard(yard))
    total = len(task_data.split(options.split))
    with progress_bar(f"generate {task_data.spec.name}/{options.split}", total, quiet) as advance:
        outcome = generate(
            options.checkpoint,
            task_data,
            yard,
            options.generation,
            split=options.split,
            output_dir=options.output_dir,
            batch_size=options.batch_size,
            device=options.device,
            progress=advance,
        )
    generations = outcome.generations
    note(
        f"{len(generations.rows)} answers, {generations.tokens} tokens in {generations.seconds:.2f} s "
        f"({generations.tokens / max(generations.seconds, 1e-9):.1f} tokens/s)"
    )
    out.print(str(outcome.folder), markup=False, highlight=False)


@with_model_options(WinRateOptions)
def win_rate_command(
    ctx: typer.Context,
    flags: dict[str, Any],
    quiet: QuietOption = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """How often a judge behind any OpenAI-compatible API prefers one model's answers to another's.

    Give two eval folders of the same split (the tuned model's and its start's); each prompt whose
    answers differ is judged in both orders, as a label job (same retries, journal and cost log).

    Example: tuneyard win-rate --candidate runs/dpo/evaluation_results/prefs_validation
    --baseline base/evaluation_results/prefs_validation --teacher gpt-4o-mini --base-url https://api.openai.com/v1

    Writes win_rates/JUDGEMENTS.json (with the judge prompt) in the candidate's eval folder.
    """
    from tuneyard.cli.label import progress_display
    from tuneyard.config import resolve_options
    from tuneyard.evaluate.win_rate import judge_win_rate

    options = resolve_options(WinRateOptions, flags, config, set_ or ())
    quiet_libraries()
    with progress_display(quiet) as on_row:
        result = judge_win_rate(options, yard_from(ctx), on_row=on_row)
    note(
        f"win rate {result.win_rate:.3f} over {result.prompts} prompts: {result.wins} wins, "
        f"{result.ties} ties, {result.losses} losses, {result.unjudged} not judged "
        f"(judgements: {result.judgements})"
    )
    out.print(f"{result.win_rate:.4f}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``eval``, ``generate``, ``grade``, ``eval-grid`` and ``win-rate`` to the root app."""
    app.command("eval", help=eval_command.__doc__)(eval_command)
    app.command("win-rate", help=win_rate_command.__doc__)(win_rate_command)
    app.command("generate", help=generate_command.__doc__)(generate_command)
    app.command("grade", help=grade_command.__doc__)(grade_command)
    app.command(
        "eval-grid",
        help=eval_grid_command.__doc__,
        context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    )(eval_grid_command)
