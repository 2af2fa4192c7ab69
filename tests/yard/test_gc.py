"""runs gc: leftovers of interrupted writes go, live writes and results stay."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tuneyard.yard import Manifest, Yard
from tuneyard.yard.gc import find_leftovers, remove_leftovers


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_gc_removes_abandoned_leftovers_only(yard: Yard, make_artifact: Callable[..., Path]) -> None:
    result = make_artifact("export", layout={"name": "keep"})
    exports = yard.root / "exports"
    pid = dead_pid()
    (exports / "crashed").mkdir()
    (exports / f".tmp-crashed-{pid}-0badc0de").mkdir()
    (exports / f".tmp-crashed-{pid}-0badc0de" / "half.bin").write_bytes(b"x")
    (result / f".manifest.json.{pid}.0badc0de.tmp").write_text("{")
    # A writer that is still running (this process) keeps its temp folder and its claimed name.
    (exports / "in-progress").mkdir()
    (exports / f".tmp-in-progress-{os.getpid()}-12345678").mkdir()
    running = yard.start_run(Manifest(kind="run", name="r"), exports / "running-run")
    leftovers = find_leftovers(yard, older_than_s=0)
    assert [(leftover.path, leftover.reason) for leftover in leftovers] == [
        ("exports/.tmp-crashed-" + str(pid) + "-0badc0de", "temporary folder of an interrupted write"),
        ("exports/crashed", "empty folder claimed by a writer that stopped"),
        (f"exports/keep/.manifest.json.{pid}.0badc0de.tmp", "temporary manifest of an interrupted write"),
    ]
    remove_leftovers(yard, leftovers)
    assert sorted(path.name for path in exports.iterdir()) == [
        f".tmp-in-progress-{os.getpid()}-12345678",
        "in-progress",
        "keep",
        "running-run",
    ]
    assert sorted(path.name for path in result.iterdir()) == ["manifest.json", "model.safetensors"]
    assert running.path.is_dir()


def test_gc_waits_for_the_grace_period(yard: Yard) -> None:
    (yard.root / "exports" / f".tmp-x-{dead_pid()}-0badc0de").mkdir(parents=True)
    assert find_leftovers(yard, older_than_s=3600) == []


def test_gc_forgets_index_entries_whose_folder_is_gone(
    yard: Yard, make_artifact: Callable[..., Path]
) -> None:
    gone = make_artifact("export", layout={"name": "gone"})
    make_artifact("export", layout={"name": "stays"})
    for path in gone.iterdir():
        path.unlink()
    gone.rmdir()
    leftovers = find_leftovers(yard, older_than_s=3600)
    assert [(leftover.path, leftover.reason) for leftover in leftovers] == [
        ("exports/gone", "index entry whose folder or manifest is gone")
    ]
    remove_leftovers(yard, leftovers)
    assert [row["name"] for row in yard.query()] == ["stays"]
