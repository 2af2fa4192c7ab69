"""The labelling journal: one JSON line per finished row, appended as results arrive.

Each line is written with a single ``write`` on a file opened for appending, so a line
the process finished writing survives SIGKILL (it is in the kernel's hands), and lines
from one writer never interleave. A rerun reads the journal back and asks only for rows
without a result; a torn last line (the process died mid-write) is ignored, and so is
everything but the last entry for a row.

In a yard on shared storage the journal is also the team's: it is sent to the store at
most every :data:`SYNC_S` seconds and when the job stops, and a run on another machine
starts from the lines found there as well as its own, so a job killed on one machine is
resumed on another, asking again only the rows finished after the last send.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from tuneyard.yard.storage import LOCAL, Storage

JOURNAL_FILE = "journal.jsonl"
# How often, at most, the journal goes to shared storage: the rows a kill can make a rerun
# elsewhere ask again, against a request to the store per row.
SYNC_S = 1.0


class Journal:
    """Append-only JSON lines; ``entries()`` reads what survived."""

    def __init__(self, path: Path, storage: Storage = LOCAL) -> None:
        self.path = path
        self.storage = storage
        path.parent.mkdir(parents=True, exist_ok=True)
        self._descriptor: int | None = None
        self._synced_at = 0.0
        self._gather()

    def append(self, entry: dict[str, Any]) -> None:
        if self._descriptor is None:
            self._descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._end_torn_line()
        os.write(self._descriptor, (json.dumps(entry, ensure_ascii=False) + "\n").encode())
        if time.monotonic() - self._synced_at >= SYNC_S:
            self.sync()

    def sync(self) -> None:
        """Send the journal to where the yard lives (nothing to do on a local yard)."""
        self.storage.sync(self.path.parent)
        self._synced_at = time.monotonic()

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None
            self.sync()

    def entries(self) -> dict[tuple[str, int], dict[str, Any]]:
        """The last complete entry per ``(split, row)``."""
        latest: dict[tuple[str, int], dict[str, Any]] = {}
        if not self.path.is_file():
            return latest
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue  # the torn line of a killed run
            latest[(entry["split"], entry["row"])] = entry
        return latest

    def _gather(self) -> None:
        """Add to the local file the complete lines another machine sent that it lacks."""
        if not self.storage.is_remote:  # the local file is the journal
            return
        try:
            shared = self.storage.read_bytes(self.path)
        except FileNotFoundError:
            return
        local = self.path.read_bytes() if self.path.is_file() else b""
        if shared == local:  # nothing new
            return
        known = set(local.splitlines())
        lines = [line for line in shared.splitlines(keepends=True) if line.endswith(b"\n")]
        new = b"".join(line for line in lines if line.rstrip(b"\n") not in known)
        if new:
            self._append_lines(new)

    def _append_lines(self, data: bytes) -> None:
        """Append whole lines to the local file, after ending a torn last line."""
        with self.path.open("ab") as handle:
            if handle.tell() and not self.path.read_bytes().endswith(b"\n"):
                handle.write(b"\n")
            handle.write(data)

    def _end_torn_line(self) -> None:
        """Start on a new line if the previous run died in the middle of one."""
        if self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
            os.write(self._descriptor or 0, b"\n")
