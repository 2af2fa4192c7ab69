"""``tuneyard validate``: parse flags, call :mod:`tuneyard.export.agreement`, print the comparison.

The validation flags come from :class:`~tuneyard.export.agreement.ValidateOptions`;
``tuneyard export`` takes the same ones (validation is on by default there).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from tuneyard.cli.console import out, quiet_libraries
from tuneyard.cli.context import yard_from
from tuneyard.cli.evaluate import ConfigOption, QuietOption, SetOption, progress_bar
from tuneyard.cli.options_cli import with_model_options
from tuneyard.export.agreement import ValidateOptions


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
        )
    ]
    if "top1_agreement" in first:
        rows += [
            row(
                f"next-token top-1 agreement ({int(first['positions'])} positions)",
                "",
                "top1_agreement",
                share,
            ),
            row("perplexity", f"{first['perplexity_hf']:.3f}", "perplexity_gguf", "{:.3f}".format),
            row("perplexity change", "", "perplexity_change", "{:+.3%}".format),
        ]
    else:  # image prompts: llama.cpp's mtmd gives no per-position logits
        rows.append(["next-token agreement, perplexity", "", *("not compared (images)" for _ in results)])
    images = f", {int(first['images'])} images" if "images" in first else ""
    if "accuracy_gguf" in first:
        rows += [
            row("same chat template", "", "chat_template_identical", lambda v: "yes" if v else "NO"),
            row(f"identical greedy answers ({int(first['rows'])}{images})", "", "greedy_identical", share),
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


@with_model_options(ValidateOptions)
def validate(
    ctx: typer.Context,
    exports: Annotated[
        list[Path], typer.Argument(metavar="EXPORT...", help="exports/{name}_{quant} folders.")
    ],
    flags: dict[str, Any],
    quiet: QuietOption = False,
    config: ConfigOption = None,
    set_: SetOption = None,
) -> None:
    """Run GGUF exports in llama.cpp and compare them with the model they came from.

    On the first --samples rows of the data the model was fine-tuned on (or --data):
    the same token ids, next-token top-1 agreement teacher-forced, perplexity,
    identical greedy answers and the graded accuracy through llama.cpp vs transformers.
    Filed in each export's manifest (metrics.validation.*) and validation/ folder.
    A vision-language export (with its mmproj) answers the rows' images through llama.cpp's
    mtmd: identical answers and accuracy are compared, logits are not.

    Example: tuneyard validate exports/smollm2_135m_lora_f16 exports/smollm2_135m_lora_q8_0 --min-accuracy 0.8
    """
    from tuneyard.config import resolve_options

    options = resolve_options(ValidateOptions, flags, config, set_ or ())
    run_validation(ctx, exports, options, quiet)


def register(app: typer.Typer) -> None:
    """Add ``validate`` to the root app."""
    app.command("validate")(validate)
