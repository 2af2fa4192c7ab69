"""The labelling journal: one JSON line per finished row, appended as results arrive.

Each line is written with a single ``write`` on a file opened for appending, so a line
the process finished writing survives SIGKILL (it is in the kernel's hands), and lines
from one writer never interleave. A rerun reads the journal back and asks only for rows
without a result; a torn last line (the process died mid-write) is ignored, and so is
everything but the last entry for a row.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

JOURNAL_FILE = "journal.jsonl"


class Journal:
    """Append-only JSON lines; ``entries()`` reads what survived."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._descriptor: int | None = None

    def append(self, entry: dict[str, Any]) -> None:
        if self._descriptor is None:
            self._descriptor = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            self._end_torn_line()
        os.write(self._descriptor, (json.dumps(entry, ensure_ascii=False) + "\n").encode())

    def close(self) -> None:
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None

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

    def _end_torn_line(self) -> None:
        """Start on a new line if the previous run died in the middle of one."""
        if self.path.stat().st_size and not self.path.read_bytes().endswith(b"\n"):
            os.write(self._descriptor or 0, b"\n")
