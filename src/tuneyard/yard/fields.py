"""The one table of a manifest's top-level fields that the index, queries and listings share.

Each manifest field that the SQLite index keeps as a column is listed here once, in the
order listings show them, with what it holds and where it appears: ``--where`` /
``--sort`` fields, ``runs ls`` filter flags and columns, ``runs aggregate`` key columns
and ``runs show``. Adding a column is one line here plus a numbered migration in
:mod:`tuneyard.yard.index`; nothing else spells the list out.

This module imports nothing heavy: ``runs ls`` reads it at start-up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ManifestField:
    """One indexed manifest field and the views it appears in."""

    name: str
    help: str
    numeric: bool = False
    filter: bool = False  # a `runs ls --NAME VALUE` / `runs aggregate --NAME VALUE` flag
    table: bool = False  # a column of the `runs ls` table
    listed: bool = True  # a column of `runs ls --format json|csv` and of `runs aggregate`


FIELDS: tuple[ManifestField, ...] = (
    ManifestField("name", "Artifact name (its folder's name).", table=True),
    ManifestField("path", "Folder relative to the yard root (absolute when outside it)."),
    ManifestField("id", "Sortable unique id (ULID).", listed=False),
    ManifestField("kind", "compressed, finetuned, run, merged, export, model, ...", filter=True, table=True),
    ManifestField("arch", "Architecture, e.g. bert.", filter=True, table=True),
    ManifestField("method", "Compression method, e.g. fwsvd.", filter=True, table=True),
    ManifestField("rank", "Compression rank.", numeric=True, table=True),
    ManifestField(
        "strategy", "Fine-tuning strategy: full, frozen, lora, qlora, lowrank, adapter.", filter=True
    ),
    ManifestField("task", "Task, e.g. sst2.", filter=True, table=True),
    ManifestField("task_type", "Task type of a model, e.g. causal_lm.", filter=True),
    ManifestField("dataset", "Dataset name, e.g. debian_topics.", filter=True),
    ManifestField("project", "Project (outputs/{project}/...).", filter=True),
    ManifestField("status", "running, complete or failed.", filter=True, table=True),
    ManifestField("created", "When the artifact was started (UTC, ISO 8601).", table=True),
    ManifestField("updated", "When its manifest last changed (UTC, ISO 8601).", listed=False),
    ManifestField("archived", "1 once `runs archive` took it out of default listings.", listed=False),
)

BY_NAME: dict[str, ManifestField] = {field.name: field for field in FIELDS}
COLUMNS: tuple[str, ...] = tuple(field.name for field in FIELDS)
FILTERS: tuple[str, ...] = tuple(field.name for field in FIELDS if field.filter)
TABLE: tuple[str, ...] = tuple(field.name for field in FIELDS if field.table)
LISTED: tuple[str, ...] = tuple(field.name for field in FIELDS if field.listed)
