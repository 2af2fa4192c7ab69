"""``tuneyard grade``: grade a file of generated answers and log every sample.

Input is JSONL or CSV with ``prediction`` and ``reference`` (and ``id``; the row
number stands in when it is absent). Output is ``grader_logs/{file}_{grader}/``:
``samples.jsonl`` (one line per sample: id, prediction, reference, score, what was
parsed, per-field verdicts, error) and ``summary.json``.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from tuneyard.components.grade_log import LOGS_FOLDER, GradeSummary, grade_records, write_grade_log
from tuneyard.components.graders import make_grader
from tuneyard.config import Cli, StrictModel
from tuneyard.errors import EvaluationError
from tuneyard.yard.storage import LOCAL
from tuneyard.yard.writer import new_folder

REQUIRED_COLUMNS = ("prediction", "reference")


class GradeOptions(StrictModel):
    """Options of ``tuneyard grade``: the arguments of :func:`grade_file`."""

    predictions: Annotated[str, Cli(path=True)] = Field(
        description="JSONL or CSV with id, prediction, reference."
    )
    grader: str = Field(description="exact | contains | regex | json | choice.")
    fields: list[str] | None = Field(default=None, description="json: fields to compare (default: all).")
    pattern: str | None = Field(default=None, description="regex: pattern whose first group is the answer.")
    choices: list[str] | None = Field(
        default=None, description="choice: labels (default: the distinct references)."
    )
    output_dir: Annotated[str | None, Cli(path=True)] = Field(
        default=None, description="Where grader_logs/ goes (default: next to the predictions file)."
    )


def read_prediction_records(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSONL or CSV predictions file, each with ``id``, ``prediction``, ``reference``."""
    if not path.is_file():
        raise EvaluationError(f"predictions file {path} does not exist.")
    if path.suffix == ".csv":
        with path.open(newline="") as handle:
            records: list[dict[str, Any]] = list(csv.DictReader(handle))
    elif path.suffix in (".jsonl", ".json"):
        records = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except ValueError as exc:
                raise EvaluationError(f"{path} line {number} is not valid JSON: {exc}.") from exc
    else:
        raise EvaluationError(f"{path} is neither .jsonl nor .csv.", "Write predictions as JSONL or CSV.")
    if not records:
        raise EvaluationError(f"{path} holds no predictions.")
    for number, record in enumerate(records, start=1):
        missing = [column for column in REQUIRED_COLUMNS if column not in record]
        if missing:
            raise EvaluationError(
                f"{path} record {number} has no {missing[0]!r} field.",
                f"Each record needs: id, {', '.join(REQUIRED_COLUMNS)}; it has: {', '.join(record)}.",
            )
        record.setdefault("id", number - 1)
    return records


def grade_file(
    predictions: Path,
    grader_name: str,
    fields: list[str] | None = None,
    pattern: str | None = None,
    choices: list[str] | None = None,
    output_dir: Path | None = None,
) -> tuple[GradeSummary, Path]:
    """Grade ``predictions`` and write logs under ``output_dir`` (default: the file's folder)."""
    records = read_prediction_records(predictions)
    grader = make_grader(
        grader_name,
        fields or (),
        pattern,
        choices or (),
        references=[record["reference"] for record in records],
    )
    logs, summary = grade_records(records, grader)
    root = (output_dir or predictions.parent).expanduser().resolve() / LOGS_FOLDER
    with new_folder(LOCAL, root / f"{predictions.stem}_{grader.name}") as (temp, final):
        details = {"predictions": str(predictions.resolve()), "fields": fields or [], "pattern": pattern}
        write_grade_log(temp, logs, summary, {**details, "choices": getattr(grader, "choices", None)})
    return summary, final
