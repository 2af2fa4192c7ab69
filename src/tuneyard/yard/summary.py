"""Flat views of manifests for ``runs aggregate`` (one row per run) and ``runs compare``.

A manifest becomes one flat mapping: its key fields (name, arch, method, rank ...),
``config.<dotted key>`` for each config leaf, ``metrics.<dotted key>`` for each
numeric metric and ``training.<key>`` for a run's numbers (trainable parameters,
``train_runtime``, best step; not ``training.last``, the latest evaluation's scores, which
would double every metric column), so runs line up column by column. The same table is
``runs aggregate``'s output and a project's ``metrics.csv`` (:mod:`tuneyard.yard.project`).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from tuneyard.yard.fields import LISTED
from tuneyard.yard.index import flatten_metrics

KEY_FIELDS = LISTED

Scalar = str | int | float | bool | None


def flatten_config(config: dict[str, Any], prefix: str = "") -> dict[str, Scalar]:
    """Config leaves under dotted keys; lists become JSON text so they fit one cell."""
    flat: dict[str, Scalar] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten_config(value, f"{name}."))
        elif isinstance(value, list):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


def flat_record(record: dict[str, Any]) -> dict[str, Scalar]:
    """One manifest record as ``{field: value}`` with ``config.*`` and ``metrics.*`` keys."""
    flat: dict[str, Scalar] = {name: record.get(name) for name in KEY_FIELDS}
    flat.update({f"config.{key}": value for key, value in flatten_config(record.get("config") or {}).items()})
    flat.update(
        {f"metrics.{key}": value for key, value in flatten_metrics(record.get("metrics") or {}).items()}
    )
    training = {key: value for key, value in (record.get("training") or {}).items() if key != "last"}
    flat.update({f"training.{key}": value for key, value in flatten_metrics(training).items()})
    return flat


def varying_keys(flats: list[dict[str, Scalar]], prefix: str) -> list[str]:
    """Keys under ``prefix`` whose value is not the same in every record (sorted)."""
    keys = sorted({key for flat in flats for key in flat if key.startswith(prefix)})
    return [key for key in keys if len({json.dumps(flat.get(key)) for flat in flats}) > 1]


def aggregate_table(records: list[dict[str, Any]]) -> tuple[list[str], list[list[Scalar]]]:
    """Columns and rows: one row per run; key fields, the config fields that vary, every metric,
    then the run's training numbers.

    Config fields equal in every run are left out: they say nothing about why the
    runs' metrics differ (the full config stays in each manifest).
    """
    flats = [flat_record(record) for record in records]
    metric_keys = sorted({key for flat in flats for key in flat if key.startswith("metrics.")})
    training_keys = sorted({key for flat in flats for key in flat if key.startswith("training.")})
    columns = [*KEY_FIELDS, *varying_keys(flats, "config."), *metric_keys, *training_keys]
    return columns, [[flat.get(column) for column in columns] for flat in flats]


def format_csv(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """RFC 4180 CSV with a header row; missing values are empty cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([["" if value is None else value for value in row] for row in rows])
    return buffer.getvalue()


def compare_table(records: list[dict[str, Any]], every_field: bool = False) -> list[list[Scalar]]:
    """Rows ``[field, value in A, value in B, ..., B - A, C - A, ...]``.

    Only the fields that differ, unless ``every_field``. The trailing delta cells are
    filled for numeric metrics present in both runs (what a reader subtracts by eye
    otherwise) and empty for everything else.
    """
    flats = [flat_record(record) for record in records]
    # name and path head the columns already.
    keys = list(dict.fromkeys(key for flat in flats for key in flat if key not in ("name", "path")))
    rows = []
    for key in keys:
        values = [flat.get(key) for flat in flats]
        if every_field or len({json.dumps(value) for value in values}) > 1:
            rows.append([key, *values, *metric_deltas(key, values)])
    return rows


def metric_deltas(key: str, values: list[Scalar]) -> list[Scalar]:
    """``value - first value`` for each value after the first, for numeric metrics only."""
    first = values[0]
    return [
        round(value - first, 10)
        if key.startswith("metrics.") and _is_number(first) and _is_number(value)
        else None
        for value in values[1:]
    ]


def _is_number(value: Scalar) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
