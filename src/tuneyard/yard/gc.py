"""``runs gc``: remove what interrupted writers left behind, and stale index entries.

Every writer works under a temporary name, ``.tmp-{name}-{pid}-{hex}``
(:mod:`tuneyard.yard.storage`), file or folder, and a killed one-shot write also leaves
the empty folder it had claimed. None of these look like results (hidden, or empty),
and gc removes them once they are older than a grace period and the process that
made them is no longer running on this host, so a write still in progress is never
touched. A folder that a killed replace had moved aside (``.tmp-old-best-...``) is put
back when nothing replaced it. Run folders with ``status: running`` are left alone:
``--resume`` continues them. Temporary files of tuneyard 0.1 (``.manifest.json.{pid}.{hex}.tmp``,
``.config.yaml.{pid}.tmp`` ...) are recognised too.

Shared weight objects (:mod:`tuneyard.yard.objects`) that no artifact links to any more
(a folder deleted by hand, a killed writer's staging folder removed in the same pass) are
removed too; one that any folder links to, a running run's included, never is.

On a yard in object storage, gc also frees this machine's disk of copies the bucket no longer
backs (:meth:`Storage.stale_copies`): working-copy folders of artifacts removed or renamed
there, and downloads of artifacts fetched by URL that have changed or gone since. Those are
deleted here only, never in the bucket. And it deletes the yard's change records older than
the journal's retention (:mod:`tuneyard.yard.change_journal`), which no machine needs any more.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuneyard.yard import change_journal, objects
from tuneyard.yard.manifest import MANIFEST_FILE
from tuneyard.yard.storage import LOCAL, TEMP_PREFIX, Entry, replaced_name

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard

# ".tmp-{name}-{pid}-{hex}" (every writer now) and 0.1's ".{name}.{pid}[.{hex}].tmp[.png]".
_TEMP_NAME = re.compile(r"^\.tmp-.+-(?P<pid>\d+)-[0-9a-f]{8}$")
_LEGACY_TEMP_NAME = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)(\.[0-9a-f]{8})?\.tmp(\.png)?$")

FOLDER_REASON = "temporary folder of an interrupted write"
FILE_REASON = "temporary file of an interrupted write"
MANIFEST_REASON = "temporary manifest of an interrupted write"
CLAIM_REASON = "empty folder claimed by a writer that stopped"
RESTORE_REASON = "older version moved aside by an interrupted replace: put back"
UPLOAD_REASON = "claimed folder whose upload stopped before its manifest"
INDEX_REASON = "index entry whose folder or manifest is gone"
OBJECT_REASON = "shared weight object that no artifact links to"
COPY_REASON = "local copy of an artifact removed or changed in the yard's storage"
JOURNAL_AGE = f"older than {change_journal.RETENTION_NS // (86400 * 10**9)} days"
JOURNAL_REASON = f"change record {JOURNAL_AGE}"


@dataclass
class Leftover:
    """One thing gc removes (or puts back): a path (or an index entry) and why."""

    path: str
    reason: str
    size: int = 0  # bytes on this machine's disk, counted for what gc frees outside the yard


def process_alive(pid: int) -> bool:
    """Whether a process with ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def writer_pid(name: str) -> int | None:
    """The pid a temporary name carries, or None when ``name`` is not a temporary name."""
    match = _TEMP_NAME.match(name) or _LEGACY_TEMP_NAME.match(name)
    return int(match.group("pid")) if match else None


def is_abandoned(path: Path, older_than_s: float, now: float) -> bool:
    """Older than the grace period, and its writer (named in the file name) is gone."""
    try:
        age = now - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    if age < older_than_s:
        return False
    pid = writer_pid(path.name)
    return pid is None or not process_alive(pid)


def temp_reason(entry: Entry, names: set[str]) -> str | None:
    """Why ``entry`` is a writer's leftover, or None when it is not one."""
    replaced = replaced_name(entry.name)
    if replaced is not None and entry.is_dir:
        return FOLDER_REASON if replaced in names else RESTORE_REASON
    if _TEMP_NAME.match(entry.name):
        return FOLDER_REASON if entry.is_dir else FILE_REASON
    legacy = _LEGACY_TEMP_NAME.match(entry.name)
    if legacy and not entry.is_dir:
        return MANIFEST_REASON if legacy.group("name") == MANIFEST_FILE else FILE_REASON
    return None


def find_leftovers(yard: Yard, older_than_s: float = 3600.0) -> list[Leftover]:
    """Everything gc would remove or put back, without changing anything."""
    now = time.time()
    leftovers: list[Leftover] = []
    # (folder, protected): a claimed folder whose writer still works next to it in
    # ".tmp-{name}-..." is empty on purpose and must stay.
    stack: list[tuple[Path, bool]] = [(yard.root, True)]
    with_manifest: set[Path] = set()
    while stack:
        folder, protected = stack.pop()
        entries = yard.storage.list(folder)
        if not entries and not protected and is_abandoned(folder, older_than_s, now):
            leftovers.append(Leftover(yard.relative(folder), CLAIM_REASON))
        names = {entry.name for entry in entries}
        if MANIFEST_FILE in names:
            with_manifest.add(folder)
        elif (claim := yard.storage.claim_of(folder)) is not None and claim.abandoned(older_than_s, now):
            leftovers.append(Leftover(yard.relative(folder), UPLOAD_REASON))
            continue
        active_temps = []
        for entry in entries:
            path = folder / entry.name
            reason = temp_reason(entry, names)
            if reason is not None:
                if is_abandoned(path, older_than_s, now):
                    leftovers.append(Leftover(yard.relative(path), reason))
                elif entry.name.startswith(TEMP_PREFIX):
                    active_temps.append(entry.name)
            elif not entry.name.startswith(".") and entry.is_dir:
                claimed = any(name.startswith(f"{TEMP_PREFIX}{entry.name}-") for name in active_temps)
                stack.append((path, claimed))
    if yard.has_index:
        for indexed in yard.index.paths():
            folder = yard.root / indexed
            # On object storage the walk's listings are the truth; the working copy may lack the folder.
            if yard.storage.is_remote and folder.is_relative_to(yard.root):
                missing = folder not in with_manifest
            else:
                missing = not (folder / MANIFEST_FILE).is_file()
            if missing:
                leftovers.append(Leftover(indexed, INDEX_REASON))
    store = yard.state_dir / objects.OBJECTS_FOLDER
    # an index row and a change record hold no file; a version put back keeps its links
    kept = (INDEX_REASON, RESTORE_REASON, JOURNAL_REASON)
    removed_first = [yard.root / leftover.path for leftover in leftovers if leftover.reason not in kept]
    for obj in objects.unreferenced(store, removed_first):
        leftovers.append(Leftover(yard.relative(obj), OBJECT_REASON))
    for copy in yard.storage.stale_copies(older_than_s):
        leftovers.append(Leftover(str(copy), COPY_REASON, tree_size(copy)))
    for record in change_journal.expired(yard.storage.changes_after(0) or [], time.time_ns()):
        leftovers.append(Leftover(f"{change_journal.JOURNAL}/{record}", JOURNAL_REASON))
    leftovers.sort(key=lambda leftover: leftover.path)
    return leftovers


def tree_size(folder: Path) -> int:
    """The bytes of the files under ``folder``."""
    return sum(path.lstat().st_size for path in folder.rglob("*") if path.is_file())


def remove_leftovers(yard: Yard, leftovers: list[Leftover]) -> None:
    """Delete the leftovers gc found (folders, files, then index entries); put back moved-aside versions."""
    stale_entries, listed_objects, records = [], [], []
    for leftover in leftovers:
        if leftover.reason == INDEX_REASON:
            stale_entries.append(leftover.path)
        elif leftover.reason == OBJECT_REASON:
            listed_objects.append(yard.root / leftover.path)
        elif leftover.reason == RESTORE_REASON:
            yard.storage.restore_replaced((yard.root / leftover.path).parent)
        elif leftover.reason == JOURNAL_REASON:
            records.append(leftover.path.removeprefix(f"{change_journal.JOURNAL}/"))
        elif leftover.reason == COPY_REASON:
            LOCAL.delete(Path(leftover.path))  # this machine's copy only: the yard's storage has none
        else:
            yard.storage.delete(yard.root / leftover.path)
    if stale_entries:
        yard.index.remove(stale_entries)
    if records:
        yard.storage.forget_changes(records)  # in batches of 1,000, not a request each
    if listed_objects:  # last: the leftovers deleted above may have held links to them
        objects.remove_objects(yard.state_dir / objects.OBJECTS_FOLDER, listed_objects)
