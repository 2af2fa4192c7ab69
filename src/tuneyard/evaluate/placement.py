"""Where an eval's files go, and how its scores reach the model's manifest and the index.

Rules (see docs/evaluate.md):

* A model inside the yard belongs to the **outermost** folder above it (or itself)
  that has a ``manifest.json`` — ``run/best`` belongs to ``run`` — other than an
  experiment's (``experiments/X/finetuned_checkpoints/run`` belongs to ``run``). Results go to
  ``<artifact>/evaluation_results/<name>/`` with ``<name> = {task}_{split}``; a model
  in another subfolder than ``best`` gets it as prefix (``last_sst2_validation``).
* A results folder is never overwritten: a second eval of the same cell gets the
  yard's ``-2``, ``-3`` suffix. Files are written into a hidden temporary folder
  that is renamed into place when complete.
* The artifact's manifest gets the scores under ``metrics[{prefix}{task}]`` for the
  validation split, ``metrics[{prefix}{task}_{split}]`` for others, through
  :func:`~tuneyard.yard.manifest.update_manifest` (so a run still training keeps them),
  and is re-registered in the index; a completed run of ``finetune --project P`` also gets
  its row of ``outputs/P/metrics.csv`` rewritten (test scores land there).
* ``tuneyard generate`` files its answers the same way under ``<artifact>/generations/``
  (files only, no scores).
* ``eval --backend server`` (answers from a server) files as ``served_{task}_{split}``, metrics
  key ``served_{task}`` (``served_{task}_{split}``), beside the in-process results of the same
  model, with the server recorded in the manifest's ``config.served_evals``.
* ``--output-dir DIR`` replaces ``<artifact>/evaluation_results``. A model outside the
  yard (or without a manifest) needs it, and then nothing else is written anywhere.
"""

from __future__ import annotations

import contextlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneyard.errors import EvaluationError
from tuneyard.yard.manifest import FileEntry, Manifest, list_files, update_manifest
from tuneyard.yard.project import project_folder_of, refresh_project_metrics
from tuneyard.yard.root import Yard
from tuneyard.yard.scan import CONTAINER_KINDS, read_manifest_text
from tuneyard.yard.writer import new_folder

RESULTS_FOLDER = "evaluation_results"
SERVED_VARIANT = (
    "served_"  # an eval whose answers came from a server: served_{task}_{split}, beside in-process
)
SERVED_EVALS = "served_evals"  # manifest config: the server behind each served metrics key
DEFAULT_SUBFOLDER = "best"
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


@dataclass(frozen=True)
class Placement:
    """The folder that will hold the results, and the manifest entry they update."""

    results_root: Path  # the folder that receives <name>/
    name: str  # e.g. "sst2_validation" or "last_sst2_test"
    artifact: Path | None  # the artifact whose manifest gets the scores
    metrics_key: str  # key under manifest.metrics


def key_part(text: str) -> str:
    """A name usable inside ``--where metrics.KEY.metric`` (no dots or spaces)."""
    return _KEY_UNSAFE.sub("-", text).strip("-") or "data"


def owning_artifact(model_folder: Path, yard: Yard) -> Path | None:
    """The outermost folder from the yard root down to ``model_folder`` with an artifact's manifest.

    An experiment's manifest (an eval grid's) is skipped: the folder holds its grid's runs,
    and a run's scores are the run's.
    """
    folder = model_folder.resolve()
    if not folder.is_relative_to(yard.root):
        return None
    relative = folder.relative_to(yard.root)
    for depth in range(1, len(relative.parts) + 1):
        candidate = yard.root.joinpath(*relative.parts[:depth])
        text = read_manifest_text(yard.storage, candidate)  # on S3: maybe in the bucket only
        if text is not None and not is_container(text):
            return candidate
    return None


def is_container(manifest_text: bytes) -> bool:
    """Whether a manifest is a folder of other artifacts' (an unreadable one counts as an artifact's)."""
    try:
        kind = json.loads(manifest_text).get("kind")
    except (ValueError, AttributeError):
        return False
    return kind in CONTAINER_KINDS


def subfolder_prefix(model_folder: Path, artifact: Path | None) -> str:
    """``""`` for the artifact itself or its ``best/``, else e.g. ``"last_"``."""
    if artifact is None:
        return ""
    relative = model_folder.resolve().relative_to(artifact)
    if relative.parts in ((), (DEFAULT_SUBFOLDER,)):
        return ""
    return key_part("_".join(relative.parts)) + "_"


def no_artifact_error(model_folder: Path, yard: Yard) -> EvaluationError:
    """Why a model's results have no artifact folder, and what gives them one.

    ``runs import`` indexes a folder in place: a folder outside the yard stays outside
    once imported, so only a copy inside the yard, imported, owns its results.
    """
    if model_folder.resolve().is_relative_to(yard.root):
        where = "without a manifest"
        fix = "or `tuneyard runs import` the folder (it writes the manifest in place)."
    else:
        where = "outside the yard"
        fix = (
            f"or copy the folder into the yard ({yard.root}) and `tuneyard runs import` the copy "
            "(import indexes a folder where it is; it does not move one in)."
        )
    return EvaluationError(
        f"{model_folder} is {where} ({yard.root}), so tuneyard has no artifact folder to put the results in.",
        f"Pass --output-dir DIR to choose where the results go, {fix}",
    )


def plan_placement(
    model_folder: Path,
    task: str,
    split: str,
    yard: Yard,
    output_dir: Path | None,
    results: str = RESULTS_FOLDER,
    variant: str = "",
) -> Placement:
    """The module docstring's rules (``results``: the artifact's folder for them; ``variant``: a prefix
    of the name and key, ``served_`` for answers from a server), or why none fits."""
    artifact = owning_artifact(model_folder, yard)
    if artifact is None and output_dir is None:
        raise no_artifact_error(model_folder, yard)
    prefix = subfolder_prefix(model_folder, artifact)
    task_key = key_part(task)
    name = f"{prefix}{variant}{task_key}_{key_part(split)}"
    metrics_key = f"{prefix}{variant}{task_key}" if split == "validation" else name
    root = output_dir.expanduser().resolve() if output_dir is not None else artifact / results  # type: ignore[operator]
    return Placement(results_root=root, name=name, artifact=artifact, metrics_key=metrics_key)


def results_folder(yard: Yard, placement: Placement) -> contextlib.AbstractContextManager[tuple[Path, Path]]:
    """``(staging, final)`` for ``<results_root>/<name>`` (see :func:`~tuneyard.yard.writer.new_folder`)."""
    return new_folder(yard.storage, placement.results_root / placement.name)


def record_in_manifest(
    yard: Yard,
    placement: Placement,
    scores: dict[str, float | None],
    results: Path,
    backend: dict[str, Any] | None = None,
) -> None:
    """Merge ``scores`` into the artifact's manifest metrics and list the new files.

    Other keys (training's own metrics, other tasks) are kept; the same key from an
    earlier eval is replaced by the newest scores, while its files stay on disk.
    ``backend`` (a served eval's server, its URL and options) goes to
    ``config.served_evals[key]``, where secrets are redacted as in any config.
    """
    artifact = placement.artifact
    if artifact is None:
        return
    added = []
    if results.is_relative_to(artifact):
        prefix = results.relative_to(artifact).as_posix()
        added = [
            FileEntry(path=f"{prefix}/{entry.path}", bytes=entry.bytes, sha256=entry.sha256)
            for entry in list_files(results)
        ]

    def add_scores(manifest: Manifest) -> None:
        if scores:
            manifest.metrics[placement.metrics_key] = {
                **manifest.metrics.get(placement.metrics_key, {}),
                **scores,
            }
        manifest.files = [*manifest.files, *added]
        if backend is not None:
            manifest.config[SERVED_EVALS] = {
                **manifest.config.get(SERVED_EVALS, {}),
                placement.metrics_key: backend,
            }

    manifest = update_manifest(artifact, add_scores, yard.storage)
    yard.register(manifest)
    project = manifest.project
    finished = manifest.kind == "run" and manifest.status == "complete"
    if finished and project and project_folder_of(yard, artifact, project) is not None:
        refresh_project_metrics(yard, project)  # the run's row in outputs/P/metrics.csv
