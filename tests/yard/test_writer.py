"""Atomic writes and never-overwrite, on real folders and real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tuneyard.yard import Manifest, Yard, read_manifest

REPO_SRC = Path(__file__).resolve().parents[2] / "src"


def visible_entries(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir() if not path.name.startswith("."))


def test_artifact_appears_complete_only_after_the_block(yard: Yard) -> None:
    target = yard.target_path("export", name="model")
    manifest = Manifest(kind="export", name="model", config={"api_key": "sk-live-123", "lr": 0.1})
    with yard.create(manifest, target) as writer:
        (writer.path / "weights.safetensors").write_bytes(b"abc")
        # While writing: the claimed folder is empty and the work is in a hidden sibling.
        assert target.is_dir() and list(target.iterdir()) == []
        assert writer.path.name.startswith(".tmp-model-")
        assert json.loads((writer.path / "manifest.json").read_text())["status"] == "running"
    assert writer.path == target == writer.final_path
    saved = read_manifest(target)
    assert saved.status == "complete"
    assert saved.path == "exports/model"
    assert [(f.path, f.bytes) for f in saved.files] == [("weights.safetensors", 3)]
    assert saved.files[0].sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert "sk-live-123" not in (target / "manifest.json").read_text()
    assert visible_entries(target.parent) == ["model"] and not any(target.parent.glob(".tmp-*"))
    assert [row["path"] for row in yard.query()] == ["exports/model"]


def test_taken_names_get_numbered_suffixes_and_say_so(yard: Yard, make_artifact: Callable[..., Path]) -> None:
    first = make_artifact("export", layout={"name": "m"})
    writers = []
    for _ in range(2):
        with yard.create(Manifest(kind="export", name="m"), yard.target_path("export", name="m")) as writer:
            (writer.path / "f.txt").write_text("new")
        writers.append(writer)
    assert first.name == "m"
    assert [w.final_path.name for w in writers] == ["m-2", "m-3"]
    assert all(w.renamed for w in writers)
    assert [read_manifest(w.final_path).name for w in writers] == ["m-2", "m-3"]
    # The first artifact is untouched.
    assert visible_entries(first) == ["manifest.json", "model.safetensors"]


def test_an_exception_while_writing_leaves_nothing_behind(yard: Yard) -> None:
    target = yard.target_path("export", name="broken")
    with (
        pytest.raises(RuntimeError, match="disk full"),
        yard.create(Manifest(kind="export", name="broken"), target) as w,
    ):
        (w.path / "half.bin").write_bytes(b"x" * 100)
        raise RuntimeError("disk full")
    assert list(target.parent.iterdir()) == []
    assert yard.query() == []


KILLED_WRITER = """
import os, sys, time
from pathlib import Path
from tuneyard.yard import Manifest, Yard
yard = Yard.open(sys.argv[1])
target = yard.target_path("export", name="victim")
with yard.create(Manifest(kind="export", name="victim"), target) as writer:
    (writer.path / "part-1.bin").write_bytes(b"x" * 1000)
    Path(sys.argv[2]).write_text(str(writer.path))
    time.sleep(60)
"""


def test_a_sigkilled_writer_leaves_no_folder_that_looks_complete(yard: Yard, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(yard.root), str(ready)],
        env={**os.environ, "PYTHONPATH": str(REPO_SRC)},
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert process.poll() is None, "writer exited early"
            assert time.monotonic() < deadline, "writer never started writing"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    exports = yard.root / "exports"
    # The claimed name is an empty folder; the partial files are in a hidden temp folder.
    assert visible_entries(exports) == ["victim"] and list((exports / "victim").iterdir()) == []
    # The only manifest is the hidden temp folder's, and it says "running".
    manifests = list(exports.rglob("manifest.json"))
    assert len(manifests) == 1 and manifests[0].parent.name.startswith(".tmp-victim-")
    assert json.loads(manifests[0].read_text())["status"] == "running"
    assert yard.query() == []
    assert yard.reindex().indexed == 0
    # gc cleans up once the writer is gone (grace period 0 for the test).
    from tuneyard.yard.gc import find_leftovers, remove_leftovers

    leftovers = find_leftovers(yard, older_than_s=0)
    assert {leftover.reason.split(" ")[0] for leftover in leftovers} == {"empty", "temporary"}
    remove_leftovers(yard, leftovers)
    assert list(exports.iterdir()) == []


def test_run_writer_lifecycle_resume_and_atomic_subfolders(yard: Yard) -> None:
    target = yard.target_path("run", project="p", dataset="d", name="whisper_base_lora_012")
    run = yard.start_run(Manifest(kind="run", name="x", project="p", dataset="d"), target)
    assert run.path == target and not run.renamed
    assert read_manifest(target).status == "running"
    with run.subfolder("best") as best:
        (best / "model.safetensors").write_bytes(b"epoch1")
    with pytest.raises(KeyboardInterrupt), run.subfolder("best") as best:
        (best / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt
    # The interrupted replacement left the previous best/ intact and no temp folder.
    assert (target / "best/model.safetensors").read_bytes() == b"epoch1"
    assert visible_entries(target) == ["best", "manifest.json"] and not list(target.glob(".tmp-*"))
    run.fail()
    assert yard.query()[0]["status"] == "failed"

    second = yard.start_run(Manifest(kind="run", name="x", project="p", dataset="d"), target)
    assert second.renamed and second.path.name == "whisper_base_lora_012-2"

    resumed = yard.resume_run(target)
    with resumed.subfolder("best") as best:
        (best / "model.safetensors").write_bytes(b"epoch2")
    resumed.manifest.metrics = {"accuracy": 0.75}
    resumed.complete()
    saved = read_manifest(target)
    assert saved.status == "complete" and saved.id == run.manifest.id
    assert [f.path for f in saved.files] == ["best/model.safetensors"]
    assert (target / "best/model.safetensors").read_bytes() == b"epoch2"
    rows = {row["name"]: row for row in yard.query()}
    assert rows["whisper_base_lora_012"]["metrics"] == {"accuracy": 0.75}
    assert rows["whisper_base_lora_012-2"]["status"] == "running"


def test_a_new_file_never_replaces_one_that_appeared_after_the_check(tmp_path: Path) -> None:
    from tuneyard.errors import ArtifactExistsError
    from tuneyard.yard.storage import LOCAL
    from tuneyard.yard.writer import refuse_to_replace, write_new_file

    target = tmp_path / "table.csv"
    refuse_to_replace(target, force=False)  # free when looked at ...
    target.write_text("someone's table\n")  # ... then another process files its own
    with pytest.raises(ArtifactExistsError, match="exists; this would replace that file"):
        write_new_file(LOCAL, target, "a,b\n", force=False)
    assert target.read_text() == "someone's table\n"
    write_new_file(LOCAL, target, "a,b\n", force=True)
    assert target.read_text() == "a,b\n"
    write_new_file(LOCAL, tmp_path / "new" / "other.csv", "c\n", force=False)
    assert (tmp_path / "new" / "other.csv").read_text() == "c\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["new", "other.csv", "table.csv"]  # no .tmp- left
