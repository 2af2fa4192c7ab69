"""``tuneyard label``: parse flags, call :func:`~tuneyard.label.labeller.label_dataset`, show progress."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tuneyard.cli.console import live_progress, note, out, quiet_libraries
from tuneyard.cli.context import yard_from
from tuneyard.cli.data_flags import comma_list
from tuneyard.errors import ConfigError

if TYPE_CHECKING:
    from tuneyard.label.labeller import Tally


def label(
    ctx: typer.Context,
    data: Annotated[
        str | None, typer.Option(help="A dataset of the yard, or a folder / file of splits.")
    ] = None,
    teacher: Annotated[str | None, typer.Option(help="The teacher model, as the server names it.")] = None,
    base_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1.")
    ] = None,
    prompt: Annotated[str | None, typer.Option(help="User message: a Jinja template over the row.")] = None,
    prompt_file: Annotated[Path | None, typer.Option(help="Or: read the user template from a file.")] = None,
    system: Annotated[str | None, typer.Option(help="System prompt (or --system-file).")] = None,
    system_file: Annotated[Path | None, typer.Option(help="Read the system prompt from a file.")] = None,
    choices: Annotated[str | None, typer.Option(help="Valid answers, comma-separated: a,b,c.")] = None,
    answer_regex: Annotated[str | None, typer.Option(help="Valid answers match this regex.")] = None,
    answer_schema: Annotated[
        Path | None, typer.Option(help="Valid answers are JSON under this JSON-schema file.")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Student target: a Jinja template over {{ answer }} and the row (default: the answer)."
        ),
    ] = None,
    output_column: Annotated[str | None, typer.Option(help="Column for the target (default label).")] = None,
    image_column: Annotated[
        str | None, typer.Option(help="Send this column's image (vision teachers).")
    ] = None,
    split: Annotated[
        list[str] | None, typer.Option("--split", help="Label only this split (repeat).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="New dataset's name (default: DATA-labelled).")] = None,
    api_key_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the key (default OPENAI_API_KEY).")
    ] = None,
    no_api_key: Annotated[bool, typer.Option("--no-api-key", help="Send no key (local servers).")] = False,
    concurrency: Annotated[int | None, typer.Option(help="Requests in flight (default 8).")] = None,
    requests_per_minute: Annotated[
        float | None, typer.Option(help="Pace all requests, retries included.")
    ] = None,
    timeout: Annotated[float | None, typer.Option(help="Seconds per request (default 60).")] = None,
    max_retries: Annotated[
        int | None, typer.Option(help="Retries on 429, 5xx, timeouts, malformed replies (default 5).")
    ] = None,
    answer_retries: Annotated[
        int | None, typer.Option(help="Ask again after an invalid answer (default 1).")
    ] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Longest answer, in tokens (default 64).")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature (default 0).")] = None,
    no_logprobs: Annotated[
        bool, typer.Option("--no-logprobs", help="Do not ask for log-probabilities (no confidence).")
    ] = False,
    min_confidence: Annotated[
        float | None, typer.Option(help="Keep apart answers whose probability is lower.")
    ] = None,
    price_prompt: Annotated[float | None, typer.Option(help="Price per million prompt tokens.")] = None,
    price_completion: Annotated[
        float | None, typer.Option(help="Price per million completion tokens.")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", help="Insist on continuing an interrupted job (a rerun resumes anyway)."),
    ] = False,
    output_dir: Annotated[Path | None, typer.Option(help="Write here instead of datasets/{name}.")] = None,
    config: Annotated[Path | None, typer.Option("--config", help="YAML file with these options.")] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help="Override an option.")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print the folder only.")] = False,
) -> None:
    """Label a dataset with a teacher model behind any OpenAI-compatible API, filed as a new dataset.

    Example: tuneyard label --data packages --teacher gpt-4o-mini --base-url https://api.openai.com/v1
    --prompt 'Debian section of: {{ text }}' --choices games,graphics,net,science,sound,text

    The key comes from $OPENAI_API_KEY (or --api-key-env NAME) and is never written anywhere.

    Each result is journalled as it arrives: after Ctrl-C or a crash, the same command asks the rest.

    Rows end labelled, rejected (rejected.jsonl) or failed (failed.jsonl), each with its reason.
    """

    from tuneyard.config import resolve_options
    from tuneyard.label.labeller import label_dataset
    from tuneyard.label.options import LabelOptions

    answer = {
        "choices": comma_list(choices),
        "regex": answer_regex,
        "json_schema": read_schema(answer_schema) if answer_schema else None,
    }
    flags = {
        "data": data,
        "teacher": teacher,
        "base_url": base_url,
        "prompt": read_text(prompt_file, "--prompt-file") if prompt_file else prompt,
        "system_prompt": read_text(system_file, "--system-file") if system_file else system,
        "answer": {key: value for key, value in answer.items() if value is not None} or None,
        "target": target,
        "output_column": output_column,
        "image_column": image_column,
        "splits": split or None,
        "name": name,
        "api_key_env": api_key_env,
        "no_api_key": no_api_key or None,
        "concurrency": concurrency,
        "requests_per_minute": requests_per_minute,
        "timeout": timeout,
        "max_retries": max_retries,
        "answer_retries": answer_retries,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "logprobs": False if no_logprobs else None,
        "min_confidence": min_confidence,
        "price_prompt": price_prompt,
        "price_completion": price_completion,
        "output_dir": str(output_dir) if output_dir else None,
    }
    options = resolve_options(LabelOptions, flags, config, overrides or [])
    quiet_libraries()
    with progress_display(quiet) as on_row:
        labelled = label_dataset(options, yard_from(ctx), on_row=on_row, resume=resume)
    if not quiet:
        summarize(labelled.tally, labelled.dropped)
    if labelled.renamed:
        note(f"note: a dataset of that name exists; this one is {labelled.path.name}.")
    out.print(str(labelled.path))


@contextmanager
def progress_display(quiet: bool) -> Iterator[Callable[[Tally], None]]:
    """A progress bar on stderr: rows done of all, rows/s, failures, running cost."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeRemainingColumn

    columns = (
        TextColumn("labelling"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
    )  # fmt: skip
    with live_progress(quiet, *columns) as progress:
        if progress is None:
            yield lambda tally: None
            return
        task = progress.add_task("labelling", total=None, rate="", status="")

        def on_row(tally: Tally) -> None:
            speed = progress.tasks[task].speed
            progress.update(
                task,
                total=tally.total,
                completed=tally.labelled + tally.rejected + tally.failed,
                rate=f"{speed:.1f} rows/s" if speed else "",
                status=status_line(tally),
            )

        yield on_row


def status_line(tally: Tally) -> str:
    """Failures, rejections and the running cost, in one line."""
    parts = [f"{tally.failed} failed", f"{tally.rejected} rejected"]
    if tally.cost is not None:
        parts.append(f"cost {tally.cost:.4f}")
    else:
        parts.append(f"{tally.prompt_tokens + tally.completion_tokens:,} tokens")
    return ", ".join(parts)


def summarize(tally: Tally, dropped: list[str]) -> None:
    """The job's outcome in three lines on stderr."""
    from tuneyard.label.output import refused_options

    note(
        f"{tally.labelled} labelled, {tally.rejected} rejected, {tally.failed} failed"
        + (f" ({tally.from_journal} from an earlier run's journal)" if tally.from_journal else "")
    )
    tokens = f"{tally.prompt_tokens:,} prompt + {tally.completion_tokens:,} completion tokens"
    note(
        f"{tally.requests} requests, {tokens}"
        + (f", cost {tally.cost:.4f}" if tally.cost is not None else "")
    )
    if dropped:
        note(f"note: request options the server refused: {refused_options(dropped)}.")
    if tally.failed:
        note("note: run the same command again to ask the failed rows again.")


def read_text(path: Path, flag: str) -> str:
    if not path.is_file():
        raise ConfigError(f"{flag} {path} does not exist.")
    return path.read_text(encoding="utf-8")


def read_schema(path: Path) -> dict:
    """A JSON (or YAML) schema file as a mapping."""
    from tuneyard.config import read_config_file

    if path.suffix == ".json":
        try:
            return json.loads(read_text(path, "--answer-schema"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"--answer-schema {path} is not JSON: {exc}.") from None
    return read_config_file(path)


def register(app: typer.Typer) -> None:
    """Add ``label`` to the root app."""
    app.command("label")(label)
