"""Split files that cannot be read: which file, which line, and what to do about it.

pyarrow and datasets report a malformed file in their own terms (``ArrowInvalid: CSV
parse error: Expected 2 columns, got 1``, ``DatasetGenerationError``), without the file's
name or line, and a file that is not UTF-8 even reads "fine" as a column of raw bytes
that fails much later. When a read fails (or leaves such a column), the file is read
again with the standard library, line by line, to find the first bad line, and the
user gets one :class:`~tuneyard.errors.DataError` naming the file, the line and the fix.
Only the failing path pays for the second read.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING

from tuneyard.errors import DataError

if TYPE_CHECKING:
    from datasets import Dataset

CSV_FIX = (
    'Fix that line: quote a field that holds the delimiter or a line break ("..."), and double '
    'a quote inside a quoted field (""); pandas\' DataFrame.to_csv writes valid CSV.'
)
JSON_LINES_FIX = 'Each line must be one JSON object, e.g. {"text": "...", "label": "..."}.'
PARQUET_FIX = "Write it again (pandas.DataFrame.to_parquet), or give the split as .csv or .jsonl."
UTF8_FIX = (
    "tuneyard reads text files as UTF-8: convert it, e.g. iconv -f latin1 -t utf-8 {name} > fixed{suffix}."
)
JSON_FIX = "A .json split holds one array of objects ([{...}, {...}]); or write one object a line as .jsonl."
EMPTY_FIX = "Add rows to it, or remove the file if that split is not wanted."


def unreadable(path: Path, error: Exception) -> DataError:
    """The error to show for ``path``, which pyarrow or datasets failed to read with ``error``."""
    if path.stat().st_size == 0:
        return DataError(f"{path} is empty.", EMPTY_FIX)
    where = locate_problem(path)
    if path.suffix == ".parquet":
        return DataError(f"{path} is not a readable Parquet file ({first_line(error)}).", PARQUET_FIX)
    if where is None:
        return DataError(f"{path} could not be read: {first_line(error)}.", fix_for(path))
    return DataError(f"{path}: {where}.", fix_for(path))


def check_contents(path: Path, dataset: Dataset) -> None:
    """Refuse a split with no rows, or text that is not UTF-8 (read as raw bytes)."""
    if len(dataset) == 0:
        raise DataError(f"{path} has no rows (a header at most).", EMPTY_FIX)
    raw = [name for name, feature in dataset.features.items() if getattr(feature, "dtype", "") == "binary"]
    if raw and path.suffix in (".csv", ".tsv", ".jsonl", ".json"):
        where = invalid_utf8(path)
        raise DataError(
            f"{path} is not UTF-8 text ({where}; column {raw[0]!r} would be raw bytes).",
            UTF8_FIX.format(name=path.name, suffix=path.suffix),
        )


def fix_for(path: Path) -> str:
    """What to do about a bad line, by file format."""
    if path.suffix == ".jsonl":
        return JSON_LINES_FIX
    if path.suffix == ".json":
        return JSON_FIX
    return CSV_FIX


def locate_problem(path: Path) -> str | None:
    """The first bad line of a text split file, in words (None when none is found)."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        return invalid_utf8(path) + " is not UTF-8"
    if path.suffix in (".csv", ".tsv"):
        return csv_problem(text, "\t" if path.suffix == ".tsv" else ",")
    if path.suffix == ".jsonl":
        return json_lines_problem(text)
    if path.suffix == ".json":
        return json_problem(text)
    return None


def csv_problem(text: str, delimiter: str) -> str | None:
    """The first row whose field count differs from the header's, or that never closes its quote."""
    reader = csv.reader(text.splitlines(keepends=True), delimiter=delimiter, strict=True)
    header = next(reader)
    start = reader.line_num + 1
    try:
        for row in reader:
            if len(row) != len(header):
                return f"line {start} has {len(row)} fields, the header has {len(header)}"
            start = reader.line_num + 1
    except csv.Error as exc:
        if "end of data" in str(exc) or "EOF" in str(exc):
            return f"the row starting on line {start} opens a quoted field that never closes"
        return f"line {start}: {exc}"
    return None


def json_lines_problem(text: str) -> str | None:
    """The first line that is not a JSON object."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            return f"line {number} is not valid JSON ({exc.msg} at column {exc.colno})"
        if not isinstance(value, dict):
            return f"line {number} is a JSON {type(value).__name__}, not an object"
    return None


def json_problem(text: str) -> str | None:
    """Where a whole-file JSON document stops parsing."""
    try:
        json.loads(text)
    except json.JSONDecodeError as exc:
        return f"invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})"
    return None


def invalid_utf8(path: Path) -> str:
    """``line N`` of the first byte sequence that is not UTF-8."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        return f"line {line}, byte {exc.start}"
    return "somewhere"


def first_line(error: Exception) -> str:
    """An exception's message, its cause's when it has none of its own, first line only."""
    cause = error.__cause__ or error.__context__
    message = str(error)
    if cause is not None and (not message or "error occurred while generating" in message):
        message = str(cause)
    return message.strip().splitlines()[0].rstrip(".") if message.strip() else type(error).__name__


def root_cause(error: BaseException) -> str:
    """The first line of the innermost exception behind ``error`` (datasets wraps the useful one)."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__  # type: ignore[assignment]
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
