"""Finding artifacts on disk: rebuild the index from manifests, import foreign folders.

Both walk folder trees the same way: hidden entries (``.tuneyard``, ``.tmp-*``
temporary folders of writers still at work or killed) are skipped, symlinks are not
followed, and the walk stops at an artifact folder, because folders nested inside an
artifact (``run/best/``, ``run/checkpoint-2-1500/``) are parts of it, not artifacts
of their own. The one exception is an experiment workspace, which holds artifacts.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from tuneyard.errors import ArtifactNotFoundError, ConfigError
from tuneyard.yard.layout import is_generic_name
from tuneyard.yard.manifest import (
    MANIFEST_FILE,
    MODEL_KINDS,
    Manifest,
    TaskTypeOf,
    list_files,
    write_manifest,
)
from tuneyard.yard.metadata_guess import infer_metadata, is_model_folder
from tuneyard.yard.storage import Storage
from tuneyard.yard.torch_checkpoint import (
    UnsafeCheckpointWarning,
    import_training_checkpoints,
    training_checkpoint_files,
)

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard

# Artifact kinds whose folders hold other artifacts (the walk continues inside them).
CONTAINER_KINDS = frozenset({"experiment"})


# The index status of an artifact whose manifest.json cannot be parsed: listed, not dropped.
CORRUPT = "corrupt"


@dataclass
class Problem:
    """A folder that could not be indexed or imported, and why.

    ``corrupt``: the folder's ``manifest.json`` cannot be parsed; the index still lists
    the folder, with status ``corrupt`` (:func:`corrupt_record`), so it does not vanish.
    """

    path: Path
    message: str
    corrupt: bool = False


@dataclass
class ScanReport:
    """What a reindex or import found."""

    indexed: int = 0
    imported: list[Path] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def subfolders(storage: Storage, folder: Path) -> list[Path]:
    """Visible sub-folders of ``folder`` in name order (symlinks not followed)."""
    return [
        folder / entry.name
        for entry in storage.list(folder)
        if entry.is_dir and not entry.name.startswith(".")
    ]


def read_manifest_text(storage: Storage, folder: Path) -> bytes | None:
    """The raw ``manifest.json`` of ``folder``, or None when it has none."""
    try:
        return storage.read_bytes(folder / MANIFEST_FILE)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def walk_manifests(storage: Storage, top: Path, problems: list[Problem]) -> Iterator[tuple[Path, Manifest]]:
    """Every artifact folder at or under ``top`` with its parsed manifest, in path order.

    Unreadable manifests are reported in ``problems`` and skipped; the walk does
    not descend into them either (they still mark an artifact folder).
    """
    stack = [top]
    while stack:
        folder = stack.pop()
        text = read_manifest_text(storage, folder)
        if text is not None:
            try:
                manifest = Manifest.model_validate_json(text)
            except ValidationError as exc:
                problems.append(Problem(folder / MANIFEST_FILE, _first_error(exc), corrupt=True))
                continue
            yield folder, manifest
            if manifest.kind not in CONTAINER_KINDS:
                continue
        stack.extend(reversed(subfolders(storage, folder)))


def listed_manifests(
    storage: Storage, folders: list[Path], problems: list[Problem], read: dict[Path, bytes] | None = None
) -> Iterator[tuple[Path, Manifest]]:
    """What :func:`walk_manifests` yields for a tree whose manifest folders are known from a
    listing (shared storage), in path order: the manifests read in one concurrent batch,
    not one round trip per folder (but those ``read`` already holds, by manifest path).

    A manifest inside an artifact that is not a container (or whose manifest is corrupt)
    is a part of it and skipped, as the walk does not descend there; a manifest removed
    since the listing is left out.
    """
    texts = dict(read or {})
    texts.update(
        storage.read_many(
            [folder / MANIFEST_FILE for folder in folders if folder / MANIFEST_FILE not in texts]
        )
    )
    closed: set[Path] = set()  # artifact folders the walk would not descend into
    for folder in sorted(folders, key=lambda path: path.parts):
        text = texts.get(folder / MANIFEST_FILE)
        if text is None or any(parent in closed for parent in folder.parents):
            continue
        try:
            manifest = Manifest.model_validate_json(text)
        except ValidationError as exc:
            problems.append(Problem(folder / MANIFEST_FILE, _first_error(exc), corrupt=True))
            closed.add(folder)
            continue
        yield folder, manifest
        if manifest.kind not in CONTAINER_KINDS:
            closed.add(folder)


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "(manifest)"
    return f"not a valid manifest: {location}: {first['msg']}"


@dataclass
class Found:
    """An artifact folder found on disk, where it is, and its manifest."""

    folder: Path
    location: str  # relative to the root, or absolute outside it
    manifest: Manifest

    @property
    def in_place(self) -> bool:
        """Whether the folder is where its manifest says it was written."""
        return self.location == self.manifest.path


def collect_records(
    yard: Yard,
    problems: list[Problem],
    task_type_of: TaskTypeOf | None = None,
    listing: dict[Path, str] | None = None,
) -> list[dict[str, Any]]:
    """Manifest records (as written to disk) of every artifact of the yard.

    The folder's actual location is recorded as its path, so a folder moved by hand
    is found where it now is. A copied folder shares its original's id: the folder
    at the path its manifest records is the original, the other is reported and skipped.
    A model artifact whose manifest records no task type (an older yard) gets the one
    ``task_type_of`` infers from its folder, in the index only. ``listing``: the root's
    manifest folders, where shared storage listed them (see :meth:`Storage.manifest_versions`).
    """
    chosen: dict[str, Found] = {}
    for top in [yard.root, *yard.external_folders()]:
        if top == yard.root and listing is not None:
            found_here = listed_manifests(yard.storage, list(listing), problems)
        else:
            found_here = walk_manifests(yard.storage, top, problems)
        for folder, manifest in found_here:
            location = folder.relative_to(yard.root).as_posix() if top == yard.root else folder.as_posix()
            found = Found(folder, location, manifest)
            earlier = chosen.get(manifest.id)
            if earlier is None:
                chosen[manifest.id] = found
                continue
            original, copy = (found, earlier) if found.in_place and not earlier.in_place else (earlier, found)
            problems.append(
                Problem(copy.folder, f"has the same manifest id as {original.folder} (a copy?); skipped")
            )
            chosen[manifest.id] = original
    records = [corrupt_record(yard, problem) for problem in problems if problem.corrupt]
    for found in chosen.values():
        found.manifest.path = found.location
        if task_type_of and found.manifest.task_type is None and found.manifest.kind in MODEL_KINDS:
            found.manifest.task_type = task_type_of(found.folder)
        records.append(found.manifest.to_data())
    return records


def corrupt_record(yard: Yard, problem: Problem) -> dict[str, Any]:
    """The index record of a folder whose manifest cannot be parsed: status ``corrupt``, its path.

    Its id is made from its path (the file's own may be unreadable), its kind is the
    file's when that much can be read, and ``problem`` says what is wrong with it.
    """
    folder = problem.path.parent
    location = yard.relative(folder)
    # On shared storage another machine may have written it: this machine's copy is what is dated.
    manifest = yard.storage.localize(problem.path)
    try:
        raw = json.loads(manifest.read_bytes())
    except (OSError, ValueError):
        raw = None
    kind = raw.get("kind") if isinstance(raw, dict) else None
    created = folder_created(folder, [MANIFEST_FILE])
    return {
        "id": f"{CORRUPT}-{hashlib.sha256(location.encode()).hexdigest()[:20]}",
        "path": location,
        "name": folder.name,
        "kind": kind if isinstance(kind, str) else "unknown",
        "status": CORRUPT,
        "created": created,
        "updated": created,
        "problem": problem.message,
    }


def reindex(yard: Yard, task_type_of: TaskTypeOf | None = None) -> ScanReport:
    """Rebuild the index from the manifests alone (the yard and its external folders).

    ``task_type_of``: how the task type of an older model artifact is inferred (the
    task-type layer's function; this layer knows no task type).

    On shared storage the root's manifests come from one listing, which is also
    remembered as the index's last listing, with the change journal's cursor: the next
    refresh reads only what changed since.
    """
    report = ScanReport()
    listing, cursor = yard.list_manifests() if yard.storage.is_remote else (None, None)
    report.indexed = yard.index.rebuild(collect_records(yard, report.problems, task_type_of, listing))
    if listing is not None and cursor is not None:
        yard.remember_listing(listing, cursor)
    return report


def find_model_folders(storage: Storage, top: Path) -> Iterator[tuple[Path, bool]]:
    """Model folders at or under ``top``: ``(folder, has_manifest)``.

    A folder counts when it holds ``config.json``, ``compression_info.json``,
    ``adapter_config.json`` or a weight file; one with a ``manifest.json`` is an
    artifact already. The walk does not descend into either.
    """
    stack = [top]
    while stack:
        folder = stack.pop()
        listing = storage.list(folder)
        files = [entry.name for entry in listing if not entry.is_dir]
        if MANIFEST_FILE in files:
            yield folder, True
            continue
        if is_model_folder(files):
            yield folder, False
            continue
        stack.extend(
            sorted(
                (folder / entry.name for entry in listing if entry.is_dir and not entry.name.startswith(".")),
                reverse=True,
            )
        )


def folder_created(folder: Path, files: list[str]) -> str:
    """When the folder's files were last written: the best guess of ``created`` for old folders.

    The files' times, not the folder's: writing ``manifest.json`` into it changes the latter.
    """
    times = [(folder / name).stat().st_mtime for name in files] or [folder.stat().st_mtime]
    moment = datetime.fromtimestamp(max(times), tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def foreign_name(folder: Path) -> str:
    """A folder's name, with its parent's for generic names (``run/checkpoint-7752``, ``run/best``)."""
    if is_generic_name(folder.name):
        return f"{folder.parent.name}/{folder.name}"
    return folder.name


def manifest_for_foreign(
    yard: Yard,
    folder: Path,
    hash_files: bool,
    task_type_of: TaskTypeOf | None = None,
    trust: bool = False,
) -> Manifest:
    """A ``kind: model`` manifest for a folder tuneyard did not write, with inferred fields.

    Seed 004's ``{Name}_best.pt`` / ``{Name}_last.pt`` checkpoints in it are read safely
    (``trust``: in full) and their weights written beside them as safetensors; the
    manifest records their epoch, best metric, training config and tensor shapes.
    """
    values, inferred = infer_metadata(folder, relative_to=yard.root)
    task_type = task_type_of(folder) if task_type_of else None
    if task_type:
        values, inferred = {**values, "task_type": task_type}, [*inferred, "task_type"]
    names = [entry.name for entry in yard.storage.list(folder) if not entry.is_dir]
    if training_checkpoint_files(names):
        values = {**values, **import_training_checkpoints(folder, names, yard.storage, trust)}
    files = list_files(folder, hash_files=hash_files)
    return Manifest.model_validate(
        {
            **values,
            "kind": "model",
            "name": foreign_name(folder),
            # The walk yields resolved paths already: no need for yard.relative's resolve().
            "path": folder.relative_to(yard.root).as_posix()
            if folder.is_relative_to(yard.root)
            else folder.as_posix(),
            "status": "complete",
            "inferred": inferred,
            "files": files,
            "created": folder_created(folder, [entry.path for entry in files]),
        }
    )


def import_paths(
    yard: Yard,
    paths: list[Path],
    hash_files: bool = False,
    task_type_of: TaskTypeOf | None = None,
    trust: bool = False,
) -> ScanReport:
    """Index model folders in place: write a ``manifest.json`` into each.

    No other file is touched, but for seed 004's pickled checkpoints, whose weights are
    written beside them as safetensors (:mod:`tuneyard.yard.torch_checkpoint`; one that
    needs full unpickling is refused unless ``trust``, and reported when trusted). A path
    that is not itself a model folder is searched recursively. Folders that already have
    a manifest are indexed as they are. If a folder is refused, the folders imported
    before it stay imported and indexed.
    """
    missing = [path for path in paths if not path.is_dir() and not is_archive(path)]
    if missing:
        raise ArtifactNotFoundError(
            f"cannot import {missing[0]}: no such folder.",
            "Give folders that hold models (config.json, weights), or a .tar of one "
            "(`tuneyard release pack -o FILE.tar`).",
        )
    paths = [unpack_archive(yard, path) if is_archive(path) else path for path in paths]
    report = ScanReport()
    records: list[dict[str, Any]] = []
    try:
        for top in paths:
            for folder, has_manifest in find_model_folders(yard.storage, top.resolve()):
                if has_manifest:
                    records.extend(_existing_records(yard, folder, report.problems))
                    continue
                manifest = _import_folder(yard, folder, hash_files, task_type_of, trust, report)
                if manifest is not None:
                    records.append(manifest.to_data())
                    report.imported.append(folder)
    finally:
        yard.remember_external([Path(data["path"]) for data in records if Path(data["path"]).is_absolute()])
        report.indexed = yard.index.upsert_many(records)
    return report


def _import_folder(
    yard: Yard,
    folder: Path,
    hash_files: bool,
    task_type_of: TaskTypeOf | None,
    trust: bool,
    report: ScanReport,
) -> Manifest | None:
    """Write the folder's manifest; None (a problem reported) when it cannot be written."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnsafeCheckpointWarning)
            manifest = manifest_for_foreign(yard, folder, hash_files, task_type_of, trust)
        write_manifest(folder, manifest, yard.storage)
    except OSError as exc:
        report.problems.append(Problem(folder, f"cannot write {MANIFEST_FILE}: {exc.strerror or exc}"))
        return None
    for warning in caught:
        if issubclass(warning.category, UnsafeCheckpointWarning):
            report.problems.append(Problem(folder, str(warning.message)))
        else:
            warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    return manifest


def is_archive(path: Path) -> bool:
    """A ``.tar`` file: what ``tuneyard release pack -o FILE.tar`` writes."""
    return path.is_file() and path.suffix == ".tar"


def unpack_archive(yard: Yard, archive: Path) -> Path:
    """Unpack a ``.tar`` holding one model folder into the yard as ``models/imported/{arch}/{name}``.

    Extracted with tarfile's ``data`` filter (no paths outside the folder, no links out,
    no device files) into a staging folder, and published whole onto a claimed name.
    """
    import tarfile

    from tuneyard.yard.writer import claim_folder

    storage = yard.storage
    staged = storage.staging_folder(yard.state_dir / "unpack")
    try:
        try:
            with tarfile.open(archive) as tar:
                tar.extractall(staged, filter="data")
        except tarfile.TarError as exc:  # unreadable, or a member the data filter refuses
            raise ConfigError(
                f"{archive} cannot be unpacked: {exc}.",
                "Import a tar made by `tuneyard release pack`; a member outside its folder, "
                "a link out of it or a device file is refused.",
            ) from exc
        tops = list(staged.iterdir())
        if len(tops) != 1 or not tops[0].is_dir() or not is_model_folder(names_in(tops[0])):
            raise ConfigError(
                f"{archive} does not hold one model folder.",
                "Import a tar made by `tuneyard release pack`, or unpack it and import the model folder.",
            )
        values, _ = infer_metadata(tops[0])
        target = claim_folder(storage, yard.target_path("model", arch=values["arch"], name=tops[0].name))
        storage.publish(tops[0], target)
    finally:
        storage.delete(staged)
    return target


def names_in(folder: Path) -> list[str]:
    """The names of the files directly in ``folder``."""
    return [entry.name for entry in folder.iterdir() if entry.is_file()]


def _existing_records(yard: Yard, folder: Path, problems: list[Problem]) -> list[dict[str, Any]]:
    records = []
    for found, manifest in walk_manifests(yard.storage, folder, problems):
        manifest.path = yard.relative(found)
        records.append(manifest.to_data())
    return records
