"""The manifest: one ``manifest.json`` per artifact folder, describing it completely.

The manifest is the source of truth; the SQLite index is a cache rebuilt from
manifests alone. The JSON Schema is exported to ``docs/manifest.schema.json``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import secrets
import socket
import time
from collections.abc import Callable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tuneyard.errors import ManifestError
from tuneyard.version import __version__
from tuneyard.yard.storage import LOCAL, Storage

SCHEMA_VERSION = 1
MANIFEST_FILE = "manifest.json"

ArtifactKind = Literal[
    "compressed", "finetuned", "run", "merged", "export", "eval", "dataset", "model", "experiment", "release"
]
Status = Literal["running", "complete", "failed"]
# The kinds a fine-tuning run is filed as: under outputs/{project}/ (run) or models/finetuned/.
TRAINING_KINDS = ("run", "finetuned")
# The kinds that hold a model, and so record the task type it solves.
MODEL_KINDS = ("compressed", "finetuned", "run", "merged", "export", "model")
# Reads a model folder and names its task type (None: undecided): the task-type layer's
# inference, handed down to the yard, which knows no task type.
TaskTypeOf = Callable[[Path], "str | None"]

TRACKED_LIBRARIES = ("torch", "transformers", "peft", "datasets", "safetensors", "accelerate")

# "token" only as a word of the key (hf_token, Authorization-Token): tokenizer and
# max_new_tokens are settings a run must show.
_SECRET_KEY = re.compile(
    r"(api[_-]?key|secret|password|passwd|credential|(^|[_-])token($|[_-]))", re.IGNORECASE
)
REDACTED = "***redacted***"

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    """A 26-character ULID: sortable by creation time, unique without coordination."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def utc_now() -> str:
    """Current time as an ISO-8601 UTC string with a ``Z`` suffix."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@functools.cache
def _installed_versions() -> tuple[tuple[str, str], ...]:
    # Looked up once per process: reading package metadata costs milliseconds, and
    # importing thousands of folders would pay it per manifest.
    versions = [("tuneyard", __version__)]
    for name in TRACKED_LIBRARIES:
        try:
            versions.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return tuple(versions)


def library_versions() -> dict[str, str]:
    """tuneyard's version and those of the libraries that shape its results."""
    return dict(_installed_versions())


def redact_secrets(value: Any) -> Any:
    """A copy of a config with every secret-looking key's value replaced."""
    if isinstance(value, dict):
        return {
            key: (REDACTED if _SECRET_KEY.search(str(key)) and item is not None else redact_secrets(item))
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [redact_secrets(item) for item in value]
    return value


class Parent(BaseModel):
    """A lineage link: which artifact this one was made from, and how."""

    id: str | None = None
    path: str
    role: str = "base"


class FileEntry(BaseModel):
    """One file of the artifact, relative to its folder.

    ``sha256`` is None for folders imported without ``--hash`` (hashing every weight
    file of thousands of foreign checkpoints would make import take hours) and for a
    run's ``checkpoint-*`` folders: working state that training prunes as it goes, whose
    optimizer files would otherwise cost seconds of hashing at every epoch's end.
    """

    path: str
    bytes: int
    sha256: str | None


class TrainingProgress(BaseModel):
    """Where a fine-tuning run stands: written after each evaluation, and its speed at the end."""

    epoch: float | None = None
    step: int = 0
    max_steps: int | None = None
    metric_for_best: str | None = None
    best_step: int | None = None
    last: dict[str, float] = Field(default_factory=dict, description="Scores of the latest evaluation.")
    train_runtime: float | None = Field(default=None, description="Seconds of the Trainer's train() loop.")
    trainable_parameters: int | None = Field(default=None, description="Parameters the run trained.")
    total_parameters: int | None = Field(default=None, description="Parameters of the model it trained.")
    train_samples_per_second: float | None = None
    train_steps_per_second: float | None = None


class Manifest(BaseModel):
    """Everything a person or a program needs to know about one artifact."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    # A manifest written by a newer tuneyard may hold fields this one cannot honour.
    schema_version: int = Field(default=SCHEMA_VERSION, alias="schema", ge=1, le=SCHEMA_VERSION)
    id: str = Field(default_factory=new_id)
    kind: ArtifactKind
    name: str
    path: str = ""
    status: Status = "running"
    arch: str | None = None
    method: str | None = None
    rank: int | None = None
    strategy: str | None = None
    task: str | None = None
    task_type: str | None = Field(
        default=None,
        description="What kind of problem a model artifact solves (sequence_classification, causal_lm, ...): "
        "recorded by the verb that made it, read by every verb that loads it.",
    )
    dataset: str | None = None
    project: str | None = None
    parents: list[Parent] = Field(default_factory=list)
    inferred: list[str] = Field(default_factory=list)
    config: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    files: list[FileEntry] = Field(default_factory=list)
    tensors: dict[str, dict[str, list[int]]] | None = Field(
        default=None,
        description="A foreign PyTorch checkpoint's weights (`runs import` of a `{Name}_best.pt`): "
        "checkpoint file -> tensor name -> shape.",
    )
    training: TrainingProgress | None = Field(default=None, description="Fine-tuning runs only.")
    stop_reason: str | None = Field(default=None, description="Why a run stopped before its end.")
    adapter_base: str | None = Field(
        default=None,
        description="A LoRA model's base as an absolute path when it was written (its adapter_config.json "
        "names the base relative to the yard root): where a copy taken out of the yard finds it.",
    )
    archived: bool | None = Field(
        default=None,
        description="True once `tuneyard runs archive` took it out of default listings (its files stay).",
    )
    created: str = Field(default_factory=utc_now)
    updated: str = Field(default_factory=utc_now)
    host: str = Field(default_factory=socket.gethostname)
    versions: dict[str, str] = Field(default_factory=library_versions)

    def to_data(self) -> dict[str, Any]:
        """The manifest as written to disk: JSON types, ``schema`` as the key, secrets redacted."""
        data = self.model_dump(by_alias=True, mode="json")
        data["config"] = redact_secrets(data["config"])
        return data

    def to_json(self) -> str:
        """The text of ``manifest.json`` (serialised by pydantic-core: fast for bulk imports)."""
        redacted = self.model_copy(update={"config": redact_secrets(self.config)})
        return redacted.model_dump_json(by_alias=True, indent=2) + "\n"


def write_manifest(folder: Path, manifest: Manifest, storage: Storage = LOCAL) -> None:
    """Write ``folder/manifest.json`` atomically.

    For a manifest nobody else can be writing yet (a folder being built, a foreign
    folder being imported); an existing artifact's manifest changes through
    :func:`update_manifest`.
    """
    manifest.updated = utc_now()
    storage.write_text(folder / MANIFEST_FILE, manifest.to_json())


def update_manifest(folder: Path, change: Callable[[Manifest], None], storage: Storage = LOCAL) -> Manifest:
    """Read ``folder``'s manifest, apply ``change`` to it and write it back, under one lock.

    The only way a verb changes an existing artifact's manifest: two processes adding
    metrics to one artifact (a run still training and an eval of its ``best/``) each see
    the other's keys, so no update is lost. Returns the manifest as written.
    """
    with storage.lock(folder):
        manifest = read_manifest(folder, storage)
        change(manifest)
        write_manifest(folder, manifest, storage)
    return manifest


def read_manifest(folder: Path, storage: Storage = LOCAL) -> Manifest:
    """Read and validate ``folder/manifest.json``."""
    target = folder / MANIFEST_FILE
    try:
        data = json.loads(storage.read_text(target))
    except FileNotFoundError as exc:
        raise ManifestError(f"{folder} has no {MANIFEST_FILE}.", "Run `tuneyard runs import` on it.") from exc
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{target} is not readable JSON: {exc}.") from exc
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ManifestError(f"{target}: field {field!r} {first['msg'].lower()}.") from exc


def read_manifest_if_any(folder: Path, storage: Storage) -> Manifest | None:
    """``folder``'s manifest, None when it has none (a corrupt one is still an error).

    Asked of ``storage``, never of a local ``is_file()``: on a yard in object storage the
    working copy may lack a manifest that the bucket holds (another machine's artifact).
    """
    try:
        return read_manifest(folder, storage)
    except ManifestError as exc:
        if isinstance(exc.__cause__, (FileNotFoundError, NotADirectoryError)):
            return None
        raise


# Digests already computed in this process, by (device, inode, size, mtime): a run's
# best/ is hashed when written and again when the run completes, and last/ is often
# hard links to best/'s files. A file changed in place gets a new mtime and a new key.
_DIGESTS: dict[tuple[int, int, int, int], str] = {}


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (once per file version per process)."""
    status = path.stat()
    key = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
    if key not in _DIGESTS:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]


def list_files(
    folder: Path, hash_files: bool = True, unhashed: Callable[[str], bool] | None = None
) -> list[FileEntry]:
    """Every regular file under ``folder`` except the manifest and hidden/temporary files.

    ``unhashed(relative_path)`` names files listed with their size only.
    """
    found: list[tuple[str, Path]] = []
    for directory, subfolders, files in os.walk(folder):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        base = Path(directory)
        prefix = base.relative_to(folder).as_posix()
        for name in files:
            relative = name if prefix == "." else f"{prefix}/{name}"
            if name.startswith(".") or relative == MANIFEST_FILE or not (base / name).is_file():
                continue
            found.append((relative, base / name))
    return [
        FileEntry(
            path=relative,
            bytes=path.stat().st_size,
            sha256=sha256_of(path) if hash_files and not (unhashed and unhashed(relative)) else None,
        )
        for relative, path in sorted(found)
    ]


def export_json_schema(target: Path) -> None:
    """Write the manifest's JSON Schema (``docs/manifest.schema.json``)."""
    schema = Manifest.model_json_schema(by_alias=True)
    LOCAL.write_text(target, json.dumps(schema, indent=2) + "\n")
