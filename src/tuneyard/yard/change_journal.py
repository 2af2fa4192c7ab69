"""The change journal of a yard on shared storage: how a machine learns what others wrote
without listing the whole yard.

Every manifest that a writer puts in or removes from the store is followed by an empty
*change record* under ``.tuneyard/shared/changes/`` (uploaded with the team's shared
state), named ``{time_ns:020d}-{host}-{pid}-{counter}/{the manifest's folder in the yard}``:
the writer's clock, then the folder, so one listing of the journal tells everything and no
record is ever read. (The folder, not the manifest's path: a record is no
``*/manifest.json``, which a script searching the bucket for manifests would take for one.)
A record only says "look at this manifest again": the reader asks the store for the
manifest's current state (missing: removed), so records read in any order, twice, or
late give the same index.

A machine keeps a *cursor*: its own clock at its last refresh. The next refresh lists the
records named after ``cursor - WINDOW`` (S3's ``StartAfter``: one request per 1,000
records, whatever the size of the yard) and re-checks those it had not seen.

**Why WINDOW is 30 minutes.** A record is named by its writer's clock just before its
PUT, and a record that lands after a reader's listing must still be named after that
reader's next start point. S3 refuses a request signed more than 15 minutes away from its
own clock (``RequestTimeTooSkewed``), and a record request is signed when its name is
taken: so a record's name is within 15 minutes of the S3 time it landed at, and the
reader's cursor within 15 minutes of the S3 time of its listing. A record that landed
after the listing is therefore named at least ``cursor - 30 min``. An upload that lands
late re-signs when botocore retries, so it is covered by the same bound.

**Retention.** ``runs gc`` deletes records older than :data:`RETENTION_NS` (the gc
machine's clock). A cursor older than ``RETENTION_NS - 2 * WINDOW_NS`` (one window for
the writers' clocks, one for the gc machine's) may have lost records it needed, so that
machine does the full listing again, as a first refresh and ``runs reindex`` do.
"""

from __future__ import annotations

import itertools
import json
import os
import posixpath
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuneyard.yard.manifest import MANIFEST_FILE
from tuneyard.yard.root import SHARED_STATE, STATE_DIR

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard
    from tuneyard.yard.storage import Storage

# Where the records live, relative to the yard root (under the shared state: uploaded).
JOURNAL = f"{STATE_DIR}/{SHARED_STATE}/changes"
MINUTE_NS = 60 * 10**9
WINDOW_NS = 30 * MINUTE_NS  # twice S3's 15-minute limit on a request's clock: see the module docstring
RETENTION_NS = 7 * 24 * 60 * MINUTE_NS
STAMP_DIGITS = 20  # nanoseconds since the epoch, zero-padded: names sort as times do
# Under .tuneyard/ (this machine's, never uploaded): the cursor and the records seen after it.
CURSOR_FILE = "journal-cursor.json"

_records_written = itertools.count()  # tells apart two records of one process in one clock tick


def record_for(changed: str) -> str | None:
    """The name of a new change record for the object ``changed`` (POSIX, relative to the yard
    root) just written or removed, if it is a manifest a listing indexes in a folder (None:
    any other object)."""
    folder = posixpath.dirname(changed)
    if not folder or not is_listed_manifest(changed):
        return None
    writer = f"{socket.gethostname()}-{os.getpid()}-{next(_records_written)}"
    return f"{stamp(time.time_ns())}-{writer}/{folder}"


def stamp(time_ns: int) -> str:
    """A time as record names start: names after ``stamp(t)`` were written at ``t`` or later."""
    return f"{max(time_ns, 0):0{STAMP_DIGITS}d}"


def written_at(record: str) -> int:
    """The writer's clock (ns) a record name carries."""
    return int(record[:STAMP_DIGITS])


def manifest_of(record: str) -> str:
    """The path (relative to the yard root) of the manifest a record names."""
    return f"{record.partition('/')[2]}/{MANIFEST_FILE}"


def is_listed_manifest(relative: str) -> bool:
    """Whether the object at ``relative`` (POSIX, under a yard folder) is a manifest a listing
    indexes: ``manifest.json`` in no hidden folder (``.tmp-*`` staging, ``.tuneyard``), as a
    folder walk skips those. So a record naming ``../`` or ``/`` never leads out of the yard."""
    *folders, name = relative.split("/")
    return name == MANIFEST_FILE and not any(part.startswith(".") or not part for part in folders)


def expired(records: list[str], now_ns: int) -> list[str]:
    """The records older than :data:`RETENTION_NS` at ``now_ns``: what ``runs gc`` deletes."""
    return [record for record in records if written_at(record) < now_ns - RETENTION_NS]


@dataclass(frozen=True)
class Cursor:
    """Where this machine's next refresh starts: its clock at the last one (ns), and the records
    named within :data:`WINDOW_NS` before it that the index already follows."""

    time_ns: int
    seen: frozenset[str]

    @classmethod
    def after(cls, time_ns: int, records: list[str]) -> Cursor:
        """The cursor of a refresh at ``time_ns`` that followed ``records`` (it keeps those the next
        refresh lists again)."""
        return cls(
            time_ns, frozenset(record for record in records if written_at(record) > time_ns - WINDOW_NS)
        )

    def usable(self, now_ns: int) -> bool:
        """Whether the journal still holds every record this cursor needs (none was deleted by
        ``runs gc`` yet) and this clock has not gone back past it."""
        return 0 <= now_ns - self.time_ns <= RETENTION_NS - 2 * WINDOW_NS

    def unseen(self, storage: Storage) -> list[str] | None:
        """The records named after ``time_ns - WINDOW_NS`` not seen yet (one listing); None: no journal."""
        records = storage.changes_after(self.time_ns - WINDOW_NS)
        return None if records is None else [record for record in records if record not in self.seen]


def cursor_now(storage: Storage) -> Cursor:
    """The cursor of a full listing starting now: the journal's records of the last window, all
    seen, since the listing that follows them holds the changes they name (the changes were
    made before their records)."""
    now = time.time_ns()
    return Cursor.after(now, storage.changes_after(now - WINDOW_NS) or [])


def read_cursor(yard: Yard) -> Cursor | None:
    """This machine's cursor for ``yard`` (None: never refreshed from the journal, or an older tuneyard)."""
    try:
        data = json.loads(yard.storage.read_text(yard.state_dir / CURSOR_FILE))
        return Cursor(int(data["time_ns"]), frozenset(data["seen"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def write_cursor(yard: Yard, cursor: Cursor) -> None:
    """Record ``cursor`` on this machine (a local file: the cursor is this machine's clock)."""
    data = {"time_ns": cursor.time_ns, "seen": sorted(cursor.seen)}
    yard.storage.write_text(yard.state_dir / CURSOR_FILE, json.dumps(data))


def record_folders(records: list[str], root: Path) -> set[Path]:
    """The folders under ``root`` whose manifests ``records`` name (a record naming anything else:
    not a tuneyard writer's, ignored)."""
    return {
        (root / manifest_of(record)).parent for record in records if is_listed_manifest(manifest_of(record))
    }
