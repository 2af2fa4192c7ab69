"""``tuneyard validate``: parse flags, call :mod:`tuneyard.export.agreement`, print the comparison.

The validation flags are defined here once; ``tuneyard export`` takes the same ones
(validation is on by default there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tuneyard.cli.console import out, quiet_libraries
from tuneyard.cli.context import yard_from
from tuneyard.cli.data_flags import (
    ChoicesOpt,
    DataOpt,
    FieldsOpt,
    GraderOpt,
    PatternOpt,
    StopOpt,
    TaskOpt,
    comma_list,
)
from tuneyard.cli.evaluate import ConfigOption, QuietOption, SetOption, progress_bar

SamplesOpt = Annotated[
    int | None, typer.Option(help="Compare on the first N rows of the split (default 32).")
]
SplitOpt = Annotated[str | None, typer.Option(help="Split of the data to compare on (default validation).")]
MinAccuracyOpt = Annotated[
    float | None,
    typer.Option(help="Release gate: fail (exit 1, export marked failed) under this llama.cpp accuracy."),
]
ValidateMaxNewTokensOpt = Annotated[int | None, typer.Option(help="Longest answer, in tokens (default 32).")]
ThreadsOpt = Annotated[int | None, typer.Option(help="llama.cpp threads (default: every core).")]


def validation_flags(
    task: str | None,
    data: Path | None,
    split: str | None,
    samples: int | None,
    min_accuracy: float | None,
    threads: int | None,
    answers: dict[str, Any],
) -> dict[str, Any]:
    """The validation flags as ``ValidateOptions`` fields (None: not given)."""
    given = {key: value for key, value in answers.items() if value is not None}
    return {
        "task": task,
        "data": str(data) if data else None,
        "split": split,
        "samples": samples,
        "min_accuracy": min_accuracy,
        "threads": threads,
        "answers": given or None,
    }


def answer_flags(
    grader: str | None,
    fields: str | None,
    pattern: str | None,
    choices: str | None,
    max_new_tokens: int | None,
    stop: list[str] | None,
) -> dict[str, Any]:
    """How answers are graded and how long they may be, as ``AnswerOptions`` fields."""
    return {
        "grader": grader,
        "fields": comma_list(fields),
        "pattern": pattern,
        "choices": comma_list(choices),
        "max_new_tokens": max_new_tokens,
        "stop": stop or None,
    }


def run_validation(ctx: typer.Context, exports: list[Path], options: Any, quiet: bool) -> None:
    """Validate, print the table, and exit 1 (``ValidationFailedError``) when a gate failed."""
    from tuneyard.errors import ValidationFailedError
    from tuneyard.export.agreement import validate_exports

    quiet_libraries()
    with progress_bar("validate through llama.cpp", None, quiet) as advance:
        results = validate_exports(list(exports), options, yard_from(ctx), advance)
    out.print(validation_table(results), end="", markup=False)
    failed = [result for result in results if not result.passed]
    if failed:
        raise ValidationFailedError(
            "; ".join(f"{result.export}: {result.reason}" for result in failed),
            "The export stays filed, marked failed (tuneyard runs ls --kind export --status failed).",
        )


def validation_table(results: list[Any]) -> str:
    """One column for transformers, one per export: the checks, the scores, the verdict."""
    from tuneyard.cli.output import format_table

    first = results[0].metrics
    header = ["check", "transformers", *(result.export.name for result in results)]

    def row(label: str, hf: str, key: str, shown: Any) -> list[str]:
        return [
            label,
            hf,
            *(shown(result.metrics[key]) if key in result.metrics else "-" for result in results),
        ]

    share = "{:.1%}".format
    rows = [
        row(
            f"same token ids ({int(first['texts'])} texts)",
            "",
            "tokenizer_identical",
            share,
        ),
        row(f"next-token top-1 agreement ({int(first['positions'])} positions)", "", "top1_agreement", share),
        row("perplexity", f"{first['perplexity_hf']:.3f}", "perplexity_gguf", "{:.3f}".format),
        row("perplexity change", "", "perplexity_change", "{:+.3%}".format),
    ]
    if "accuracy_gguf" in first:
        rows += [
            row("same chat template", "", "chat_template_identical", lambda v: "yes" if v else "NO"),
            row(f"identical greedy answers ({int(first['rows'])})", "", "greedy_identical", share),
            row(
                f"{results[0].grader} accuracy",
                f"{first['accuracy_hf']:.3f}",
                "accuracy_gguf",
                "{:.3f}".format,
            ),
            row(
                "seconds per answer",
                f"{first['seconds_per_answer_hf']:.2f}",
                "seconds_per_answer_gguf",
                "{:.2f}".format,
            ),
        ]
    rows.append(["verdict", "", *("passed" if r.passed else "FAILED" for r in results)])
    return format_table(header, rows)


def validate(
    ctx: typer.Context,
    exports: Annotated[
        list[Path], typer.Argument(metavar="EXPORT...", help="exports/{name}_{quant} folders.")
    ],
    task: TaskOpt = None,
    data: DataOpt = None,
    split: SplitOpt = None,
    samples: SamplesOpt = None,
    min_accuracy: MinAccuracyOpt = None,
    threads: ThreadsOpt = None,
    grader: GraderOpt = None,
    fields: FieldsOpt = None,
    pattern: PatternOpt = None,
    choices: ChoicesOpt = None,
    max_new_tokens: ValidateMaxNewTokensOpt = None,
    stop: StopOpt = None,
    quiet: QuietOption = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Run GGUF exports in llama.cpp and compare them with the model they came from.

    On the first --samples rows of the data the model was fine-tuned on (or --data):
    the same token ids, next-token top-1 agreement teacher-forced, perplexity,
    identical greedy answers and the graded accuracy through llama.cpp vs transformers.
    Filed in each export's manifest (metrics.validation.*) and validation/ folder.

    Example: tuneyard validate exports/smollm2_135m_lora_f16 exports/smollm2_135m_lora_q8_0 --min-accuracy 0.8
    """
    from tuneyard.config import resolve_options
    from tuneyard.export.agreement import ValidateOptions

    answers = answer_flags(grader, fields, pattern, choices, max_new_tokens, stop)
    flags = validation_flags(task, data, split, samples, min_accuracy, threads, answers)
    options = resolve_options(ValidateOptions, flags, config, set_ or ())
    run_validation(ctx, exports, options, quiet)


def register(app: typer.Typer) -> None:
    """Add ``validate`` to the root app."""
    app.command("validate")(validate)
