"""``tuneyard.load``: a model folder, a hub id, an artifact on object storage (``s3://...``), or a
release reference ``release:NAME@ALIAS``.

Releases live above the task types (which own loading), so the reference is resolved
here, to the released artifact's folder in the yard of ``TUNEYARD_HOME`` or the
working directory, and the folder loaded by :func:`tuneyard.task_types.model_loading.load`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tuneyard.release.registry import REFERENCE_PREFIX, Registry
from tuneyard.task_types import model_loading
from tuneyard.yard.root import Yard
from tuneyard.yard.storage import fetch_artifact, is_storage_url


def load(path: str | Path, yard: str | Path | None = None) -> Any:
    """Load the model at ``path`` in eval mode; ``"release:NAME@VERSION|ALIAS"`` loads a release.

    ``yard`` is the yard a release reference is looked up in (default: ``TUNEYARD_HOME``,
    else the working directory). A URL (``s3://bucket/yard/outputs/p/run``) is downloaded
    once into this machine's cache (:func:`tuneyard.yard.storage.fetch_artifact`).
    """
    if isinstance(path, str) and path.startswith(REFERENCE_PREFIX):
        return model_loading.load(release_folder(path, yard))
    if is_storage_url(path):
        return model_loading.load(fetch_artifact(str(path)))
    return model_loading.load(path)


def release_folder(reference: str, yard: str | Path | None = None) -> Path:
    """The artifact folder a release reference points at, present on this machine (a yard on S3:
    downloaded into its working copy when another machine released it)."""
    opened = Yard.open(yard)
    registry = Registry(opened)
    return opened.localize(registry.artifact_folder(registry.resolve(reference)))
