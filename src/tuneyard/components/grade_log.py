"""A grading's per-sample log and summary: what ``tuneyard grade`` and every graded eval write.

``samples.jsonl`` holds every decision (id, prediction, reference, score, what was
parsed, per-field verdicts, error), ``summary.json`` the scores and how they were made.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tuneyard.yard.manifest import utc_now

LOGS_FOLDER = "grader_logs"


@dataclass
class GradeSummary:
    """What a person wants first: the score, per-field accuracy, how many did not parse."""

    grader: str
    samples: int
    score: float  # mean over all samples (unparsable ones score 0)
    unparsable: int
    score_parsed: float | None  # mean over the parsable ones; None when there are none
    field_accuracy: dict[str, float] = field(default_factory=dict)


def grade_records(records: list[dict[str, Any]], grader: Any) -> tuple[list[dict[str, Any]], GradeSummary]:
    """Grade every record; return the per-sample log lines and the summary."""
    logs = []
    for record in records:
        grade = grader.grade(record["prediction"], record["reference"])
        logs.append(
            {
                "id": record["id"],
                "prediction": record["prediction"],
                "reference": record["reference"],
                **asdict(grade),
            }
        )
    parsed = [log for log in logs if log["parsed"]]
    field_names = list(logs[0]["fields"]) if logs else []
    summary = GradeSummary(
        grader=grader.name,
        samples=len(logs),
        score=sum(log["score"] for log in logs) / len(logs),
        unparsable=len(logs) - len(parsed),
        score_parsed=sum(log["score"] for log in parsed) / len(parsed) if parsed else None,
        field_accuracy={
            name: sum(bool(log["fields"].get(name)) for log in logs) / len(logs) for name in field_names
        },
    )
    return logs, summary


def write_grade_log(
    folder: Path, logs: list[dict[str, Any]], summary: GradeSummary, details: dict[str, Any]
) -> None:
    """``samples.jsonl`` (every decision) and ``summary.json`` (the scores and how they were made)."""
    with (folder / "samples.jsonl").open("w") as handle:
        for log in logs:
            handle.write(json.dumps(log, default=str) + "\n")
    document = {**asdict(summary), **details, "created": utc_now()}
    (folder / "summary.json").write_text(json.dumps(document, indent=2) + "\n")
