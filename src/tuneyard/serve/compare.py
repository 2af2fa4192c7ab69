"""The compare page: ``runs compare``'s table (fields that differ, metric deltas B - A) for ids."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneyard.errors import ConfigError
from tuneyard.serve.artifact import record_by_id
from tuneyard.yard.root import Yard
from tuneyard.yard.summary import Scalar, compare_table


@dataclass
class Comparison:
    """Artifacts side by side: one row per field, then a delta column per artifact after the first."""

    records: list[dict[str, Any]]
    rows: list[list[Scalar]]

    @property
    def columns(self) -> list[str]:
        """``field``, each artifact's path, then ``Δ path`` for each artifact after the first."""
        paths = [str(record["path"]) for record in self.records]
        return ["field", *paths, *(f"Δ {path}" for path in paths[1:])]

    def to_data(self) -> dict[str, Any]:
        """The ``/api/compare`` answer."""
        return {"columns": self.columns, "rows": self.rows}


def comparison(yard: Yard, artifact_ids: list[str], every_field: bool = False) -> Comparison:
    """Compare two or more artifacts, given by id, as ``runs compare`` does."""
    ids = list(dict.fromkeys(artifact_ids))
    if len(ids) < 2:
        raise ConfigError(
            f"compare needs two or more artifacts, got {len(ids)}.",
            "Tick two or more rows of the runs table, then press compare.",
        )
    records = [record_by_id(yard, artifact_id) for artifact_id in ids]
    return Comparison(records, compare_table(records, every_field))
