"""An artifact's page and its API object: ``runs show`` as data, looked up by id only.

The web view never takes a folder path from a URL to find an artifact (``runs show``
accepts one): an id is looked up in the index, so a request cannot point the view at
a manifest elsewhere on the machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tuneyard.errors import ArtifactNotFoundError
from tuneyard.serve.files import OutsideArtifactError, artifact_folder, plots
from tuneyard.yard.fields import COLUMNS
from tuneyard.yard.index import flatten_metrics
from tuneyard.yard.lineage import Family, family
from tuneyard.yard.root import Yard
from tuneyard.yard.summary import Scalar, flatten_config


def record_by_id(yard: Yard, artifact_id: str) -> dict[str, Any]:
    """The stored manifest of the artifact with exactly this id."""
    row = yard.index.by_id(artifact_id.upper()) if yard.has_index else None
    if row is None:
        raise ArtifactNotFoundError(
            f"no artifact with id {artifact_id!r} in the yard at {yard.root}.",
            "Pick one from the runs table.",
        )
    record: dict[str, Any] = row["manifest"]
    return record


def api_record(yard: Yard, artifact_id: str) -> dict[str, Any]:
    """``/api/runs/{id}``: the manifest with ``children`` and ``lineage``, as ``runs show -f json``."""
    record = record_by_id(yard, artifact_id)
    return {**record, **family(yard, record).to_data()}


@dataclass
class FileRow:
    """One entry of the manifest's file list, and whether the page links to it."""

    path: str
    bytes: int
    sha256: str | None
    linked: bool


@dataclass
class ArtifactPage:
    """What the artifact page shows."""

    record: dict[str, Any]
    fields: list[tuple[str, Any]]
    relatives: Family
    metrics: dict[str, float]
    config: dict[str, Scalar]
    files: list[FileRow]
    plots: list[str]
    served: bool  # False: the artifact lies outside the yard, so its files are not served


def artifact_page(yard: Yard, artifact_id: str) -> ArtifactPage:
    """Everything ``runs show`` prints about one artifact, plus the plots in its folder."""
    record = record_by_id(yard, artifact_id)
    fields = [(name, record[name]) for name in (*COLUMNS, "host") if record.get(name) is not None]
    if record.get("versions"):
        fields.append(("versions", ", ".join(f"{k} {v}" for k, v in record["versions"].items())))
    try:
        folder = artifact_folder(yard, record)
        served = True
    except OutsideArtifactError:
        folder, served = None, False
    files = [
        FileRow(
            entry["path"],
            entry.get("bytes", 0),
            entry.get("sha256"),
            # on shared storage the file is in the bucket, downloaded when its link is followed
            served and folder is not None and (yard.storage.is_remote or (folder / entry["path"]).is_file()),
        )
        for entry in record.get("files") or []
    ]
    return ArtifactPage(
        record=record,
        fields=fields,
        relatives=family(yard, record),
        metrics=flatten_metrics(record.get("metrics") or {}),
        config=flatten_config(record.get("config") or {}),
        files=files,
        plots=plots(yard, record),
        served=served,
    )
