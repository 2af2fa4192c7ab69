"""``runs gc``: remove what interrupted writers left behind, and stale index entries.

A killed :class:`~tuneyard.yard.writer.ArtifactWriter` leaves a hidden
``.tmp-{name}-{pid}-{hex}`` folder and the empty folder it had claimed; a killed
manifest write leaves ``.manifest.json.{pid}.{hex}.tmp``. None of these look like
results (hidden, or empty), and gc removes them once they are older than a grace
period and the process that made them is no longer running on this host, so a write
still in progress is never touched. Run folders with ``status: running`` are left
alone: ``--resume`` continues them.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuneyard.yard.manifest import MANIFEST_FILE
from tuneyard.yard.writer import TEMP_PREFIX

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard

# ".tmp-name-1234-9f3a01bc" (temp folder) and ".manifest.json.1234.9f3a01bc.tmp".
_WRITER_PID = re.compile(r"[-.](\d+)[-.][0-9a-f]{8}(\.tmp)?$")


@dataclass
class Leftover:
    """One thing gc removes: a path (or an index entry) and why."""

    path: str
    reason: str


def process_alive(pid: int) -> bool:
    """Whether a process with ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_abandoned(path: Path, older_than_s: float, now: float) -> bool:
    """Older than the grace period, and its writer (named in the file name) is gone."""
    try:
        age = now - path.lstat().st_mtime
    except FileNotFoundError:
        return False
    if age < older_than_s:
        return False
    match = _WRITER_PID.search(path.name)
    return match is None or not process_alive(int(match.group(1)))


def find_leftovers(yard: Yard, older_than_s: float = 3600.0) -> list[Leftover]:
    """Everything gc would remove, without removing anything."""
    now = time.time()
    leftovers: list[Leftover] = []
    # (folder, protected): a claimed folder whose writer still works next to it in
    # ".tmp-{name}-..." is empty on purpose and must stay.
    stack: list[tuple[Path, bool]] = [(yard.root, True)]
    while stack:
        folder, protected = stack.pop()
        try:
            with os.scandir(folder) as scan:
                entries = sorted(scan, key=lambda entry: entry.name)
        except OSError:
            continue
        if not entries and not protected and is_abandoned(folder, older_than_s, now):
            leftovers.append(Leftover(yard.relative(folder), "empty folder claimed by a writer that stopped"))
        active_temps = []
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith(TEMP_PREFIX):
                if is_abandoned(path, older_than_s, now):
                    leftovers.append(Leftover(yard.relative(path), "temporary folder of an interrupted write"))
                else:
                    active_temps.append(entry.name)
            elif entry.name.startswith(f".{MANIFEST_FILE}.") and entry.name.endswith(".tmp"):
                if is_abandoned(path, older_than_s, now):
                    leftovers.append(Leftover(yard.relative(path), "temporary manifest of an interrupted write"))
            elif not entry.name.startswith(".") and entry.is_dir(follow_symlinks=False):
                claimed = any(name.startswith(f"{TEMP_PREFIX}{entry.name}-") for name in active_temps)
                stack.append((path, claimed))
    if yard.has_index:
        for indexed in yard.index.paths():
            if not (yard.root / indexed / MANIFEST_FILE).is_file():
                leftovers.append(Leftover(indexed, "index entry whose folder or manifest is gone"))
    leftovers.sort(key=lambda leftover: leftover.path)
    return leftovers


def remove_leftovers(yard: Yard, leftovers: list[Leftover]) -> None:
    """Delete the leftovers gc found (folders, files, then index entries)."""
    stale_entries = []
    for leftover in leftovers:
        if leftover.reason.startswith("index entry"):
            stale_entries.append(leftover.path)
            continue
        path = yard.root / leftover.path
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    if stale_entries:
        yard.index.remove(stale_entries)
