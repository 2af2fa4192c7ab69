"""The runs table: ``runs ls``'s query (fields, ``--where``, ``--sort``) from a page's query string.

The filter and the order are compiled to SQL by :meth:`tuneyard.yard.root.Yard.query`
and run on the index; only the rows shown (``limit`` of them, plus one to tell whether
more match) come back to Python.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from tuneyard.errors import QueryError
from tuneyard.yard.fields import BY_NAME, FILTERS, TABLE
from tuneyard.yard.query import mentioned_metric_keys
from tuneyard.yard.root import Yard

DEFAULT_LIMIT = 200
MAX_LIMIT = 10_000
# Metric columns of the table: those the filter or order names, then the most common.
METRIC_COLUMNS = 6


@dataclass(frozen=True)
class RunsQuery:
    """What a person asked the runs table for: field filters, ``where``, ``sort`` and ``limit``."""

    where: str | None = None
    sort: str | None = None
    limit: int | None = DEFAULT_LIMIT
    filters: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Mapping[str, str], default_limit: int | None = DEFAULT_LIMIT) -> RunsQuery:
        """Read a query string: ``?arch=bert&where=metrics.accuracy>0.8&sort=-rank&limit=50``."""
        raw_limit = params.get("limit") or None
        limit = default_limit
        if raw_limit is not None:
            if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
                raise QueryError(
                    f"limit must be a whole number from 1 to {MAX_LIMIT:,}, got {raw_limit!r}.",
                    "Narrow the rows with a filter or where= instead.",
                )
            limit = int(raw_limit)
        return cls(
            where=params.get("where") or None,
            sort=params.get("sort") or None,
            limit=limit,
            filters={name: params.get(name) or None for name in FILTERS},
        )

    def url(self, page: str = "/runs", **changes: str | None) -> str:
        """This query's ``/runs?...`` link (or ``page``'s, e.g. ``/api/runs``), some parameters changed."""
        values: dict[str, Any] = {
            **self.filters,
            "where": self.where,
            "sort": self.sort,
            "limit": self.limit if self.limit != DEFAULT_LIMIT else None,
            **changes,
        }
        return f"{page}?" + urlencode({key: value for key, value in values.items() if value})

    def sort_url(self, key: str) -> str:
        """The link a column header carries: sort by ``key``, descending first, then ascending."""
        return self.url(sort=key if self.sort == f"-{key}" else f"-{key}")

    def sort_mark(self, key: str) -> str:
        """▼ / ▲ on the column the table is sorted by (its first sort key)."""
        first = (self.sort or "").split(",")[0].strip()
        return {f"-{key}": " ▼", key: " ▲", f"+{key}": " ▲"}.get(first, "")


def metric_text(value: object) -> str:
    """A metric cell: four significant digits, ``-`` when the run has none."""
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


@dataclass(frozen=True)
class Cell:
    """One cell of the table, formatted: its text and whether it holds a number (right-aligned)."""

    text: str
    numeric: bool = False


@dataclass
class Listing:
    """One page of the runs table."""

    query: RunsQuery
    rows: list[dict[str, Any]]
    more: bool
    metric_columns: list[str]
    notes: list[str]

    # The name column comes first and links to the artifact; these follow it.
    columns: tuple[str, ...] = tuple(name for name in TABLE if name != "name")

    def cells(self, row: dict[str, Any]) -> list[Cell]:
        """A row's cells after its name: the table's fields, then its metrics (formatted once, here)."""
        fields = [
            Cell(row["created"][:16].replace("T", " ")) if name == "created"
            else Cell("-" if row[name] is None else str(row[name]), BY_NAME[name].numeric)
            for name in self.columns
        ]  # fmt: skip
        metrics = row["metrics"]
        return fields + [Cell(metric_text(metrics.get(key)), True) for key in self.metric_columns]


def run_query(yard: Yard, query: RunsQuery) -> list[dict[str, Any]]:
    """The index rows ``query`` selects (one more than its limit), exactly as ``runs ls`` selects them."""
    limit = None if query.limit is None else query.limit + 1
    return yard.query(where=query.where, sort=query.sort, limit=limit, **query.filters)


def listing(yard: Yard, query: RunsQuery) -> Listing:
    """The rows, the metric columns to show and any notes about the query."""
    rows = run_query(yard, query)
    more = query.limit is not None and len(rows) > query.limit
    rows = rows[: query.limit]
    mentioned = mentioned_metric_keys(query.where, query.sort)
    if yard.has_index:
        notes = yard.index.unknown_metric_notes(mentioned)
    else:
        notes = [f"no index in {yard.root} yet: the yard is empty, or run `tuneyard runs reindex`."]
    return Listing(query, rows, more, metric_columns(rows, mentioned), notes)


def metric_columns(rows: list[dict[str, Any]], mentioned: list[str]) -> list[str]:
    """The metrics the query names, then those most of the shown rows have, up to :data:`METRIC_COLUMNS`."""
    counts = Counter(key for row in rows for key in row["metrics"])
    common = [key for key, _ in counts.most_common() if key not in mentioned]
    return [*mentioned, *common][: max(METRIC_COLUMNS, len(mentioned))]
