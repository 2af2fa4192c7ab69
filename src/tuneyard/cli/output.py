"""Printing result tables as aligned text, JSON or CSV (``--format table|json|csv``).

Plain aligned text rather than a drawn table: it is greppable, pastes into issues,
and stays fast for thousands of rows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from tuneyard.yard.summary import format_csv  # shared with a project's metrics.csv


class OutputFormat(StrEnum):
    """How a table command prints its result."""

    table = "table"
    json = "json"
    csv = "csv"


def cell(value: Any) -> str:
    """A value as table text: ``-`` for missing, 4 significant digits for fractions."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def format_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Columns padded to their widest cell, two spaces apart."""
    texts = [[cell(value) for value in row] for row in rows]
    widths = [max([len(column), *(len(row[i]) for row in texts)]) for i, column in enumerate(columns)]
    lines = ["  ".join(column.ljust(width) for column, width in zip(columns, widths)).rstrip()]
    lines.extend("  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in texts)
    return "\n".join(lines) + "\n"


def format_rows(
    fmt: OutputFormat,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    objects: Sequence[Any] | None = None,
) -> str:
    """The text to print: ``objects`` (or one object per row) as JSON, else table or CSV."""
    if fmt is OutputFormat.json:
        payload = list(objects) if objects is not None else [dict(zip(columns, row)) for row in rows]
        return json.dumps(payload, indent=2) + "\n"
    if fmt is OutputFormat.csv:
        return format_csv(columns, rows)
    return format_table(columns, rows)
