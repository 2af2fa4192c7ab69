"""An artifact's lifecycle after it is written: archived out of listings, or removed.

Archiving is a flag in the manifest (the truth, so ``runs reindex`` keeps it) that the
index copies into a column default listings skip; the files stay where they are.
Removing deletes the folder, but never one that a later artifact or a release still
names as a parent (found by manifest id, so a renamed folder keeps its referrers),
unless the caller forces it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import TuneyardError
from tuneyard.yard.manifest import MANIFEST_FILE, Manifest, read_manifest, update_manifest

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard
    from tuneyard.yard.storage import Storage


class ArtifactInUseError(TuneyardError):
    """An artifact that others still reference (or a run still writing) was asked to be removed."""


@dataclass(frozen=True)
class Removed:
    """What ``runs rm`` deleted: the folder, and the referrers it was forced past."""

    path: str
    referrers: list[dict[str, Any]]


def set_archived(yard: Yard, reference: str, archived: bool = True) -> Manifest:
    """Archive (or unarchive) one artifact: its manifest records it, the index follows."""
    record = yard.find(reference)
    folder = yard.absolute(record["path"])

    def change(manifest: Manifest) -> None:
        manifest.archived = True if archived else None
        manifest.path = yard.relative(folder)

    manifest = update_manifest(folder, change, yard.storage)
    yard.register(manifest)
    return manifest


def nested_ids(storage: Storage, folder: Path) -> list[str]:
    """Manifest ids of the folder and of its parts (``best/``, ``last/``), which children may name.

    Walked through the yard's storage: on S3 the parts of another machine's run are in the
    bucket only, and a referrer of its ``best/`` must still keep it from removal.
    """
    ids: list[str] = []
    stack = [folder]
    while stack:
        current = stack.pop()
        listing = storage.list(current)
        if any(entry.name == MANIFEST_FILE and not entry.is_dir for entry in listing):
            try:
                ids.append(read_manifest(current, storage).id)
            except TuneyardError:
                pass  # an unreadable part names nothing
        stack.extend(current / entry.name for entry in reversed(listing) if entry.is_dir)
    return ids


def referrers(yard: Yard, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Artifacts outside ``record``'s folder that name it, or a part of it, as a parent."""
    if not yard.has_index:
        return []
    folder = yard.absolute(record["path"])
    ids = list(dict.fromkeys([str(record["id"]), *nested_ids(yard.storage, folder)]))
    rows = yard.index.referrers(ids, str(record["path"]))
    return [row for row in rows if not yard.absolute(row["path"]).is_relative_to(folder)]


def remove(yard: Yard, reference: str, force: bool = False) -> Removed:
    """Delete one artifact's folder and its index entry.

    Refused (:class:`ArtifactInUseError`) while a release, a merge, an export or a run
    started from it still references it, or while it is ``running``, unless ``force``; always
    refused for a folder outside the yard (a user's own folder that ``runs import`` indexed in place).
    """
    record = yard.find(reference)
    folder = yard.absolute(record["path"])
    if not folder.resolve().is_relative_to(yard.root.resolve()):
        raise ArtifactInUseError(
            f"{record['path']} is outside the yard ({yard.root}): `runs import` indexed it in place, "
            "and tuneyard deletes only folders inside the yard, --force or not.",
            "Delete the folder yourself if you mean to; `tuneyard runs reindex` then drops it.",
        )
    found = referrers(yard, record)
    if not force:
        refuse_if_in_use(record, found)
    yard.storage.delete(folder)
    if yard.has_index:
        yard.index.remove([record["path"]])
    return Removed(record["path"], found)


def refuse_if_in_use(record: dict[str, Any], found: list[dict[str, Any]]) -> None:
    """Raise :class:`ArtifactInUseError` naming each referrer, or the running status."""
    path = record["path"]
    if found:
        names = "\n".join(f"  {row['kind']}  {row['path']}" for row in found)
        raise ArtifactInUseError(
            f"{path} is referenced by {len(found)} artifact(s):\n{names}",
            f"Remove those first, archive it instead (`tuneyard runs archive {path}`), "
            "or pass --force to delete it anyway (they keep a dangling parent link).",
        )
    if record.get("status") == "running":
        raise ArtifactInUseError(
            f"{path} has status running: a writer may still be filling it.",
            "Wait for it to end, or pass --force if its process is gone.",
        )
