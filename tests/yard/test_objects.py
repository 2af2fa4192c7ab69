"""Shared bytes: weight files stored once under .tuneyard/objects/, hard-linked into artifacts.

One yard of real runs of one tiny BERT (a frozen run keeping 3 checkpoints, a second
frozen run, two LoRA runs, a safetensors export of the first run's best/) is built once;
each test works in a ``cp -a`` copy of it, which keeps the hard links. Concurrency and
kills use real processes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from topic_data import write_topic_csvs

from tuneyard.cli import main
from tuneyard.yard.manifest import sha256_of
from tuneyard.yard.objects import OBJECTS_FOLDER, WEIGHT_SUFFIXES, object_path

QUICK = ("--epochs", "1", "--batch-size", "8", "--max-length", "32", "--quiet")


def run_cli(root: Path, *args: object, capsys: pytest.CaptureFixture[str] | None = None) -> str:
    """``tuneyard --yard ROOT ARGS`` in this process (raises on failure); its stdout when captured."""
    if capsys is not None:
        capsys.readouterr()
    main(["--yard", str(root), *map(str, args)])
    return capsys.readouterr().out if capsys is not None else ""


@pytest.fixture(scope="module")
def runs_yard(tmp_path_factory: pytest.TempPathFactory, tiny_model: Callable[..., Path]) -> Path:
    """The yard of four runs of one base and an export, built once for the module."""
    root = tmp_path_factory.mktemp("objects") / "yard"
    data = write_topic_csvs(
        tmp_path_factory.mktemp("data") / "topics", ("sports", "cooking"), {"train": 32, "validation": 8}
    )
    base = ("finetune", "--checkpoint", tiny_model("bert"), "--data", data, *QUICK)
    run_cli(root, *base, "--strategy", "frozen", "--name", "keep3", "--save-steps", "1", "--keep", "3")
    run_cli(root, *base, "--strategy", "frozen", "--name", "frozen2", "--learning-rate", "3e-3")
    run_cli(root, *base, "--strategy", "lora", "--name", "lora-a")
    run_cli(root, *base, "--strategy", "lora", "--name", "lora-b", "--lora-r", "4")
    keep3 = next(root.glob("**/keep3"))
    run_cli(
        root,
        "export",
        "--checkpoint",
        keep3 / "best",
        "--format",
        "safetensors",
        "--name",
        "keep3-export",
        "-q",
    )
    return root


@pytest.fixture
def yard(runs_yard: Path, tmp_path: Path) -> Path:
    """A private copy of :func:`runs_yard` with its hard links (``cp -a``)."""
    subprocess.run(["cp", "-a", str(runs_yard), str(tmp_path / "yard")], check=True)
    return tmp_path / "yard"


def weight_files(root: Path) -> list[Path]:
    """Every weight file in the yard's artifacts (not the store itself)."""
    return sorted(
        path
        for path in root.rglob("*")
        if path.is_file() and path.suffix in WEIGHT_SUFFIXES and ".tuneyard" not in path.parts
    )


def assert_linked_to_objects(root: Path) -> None:
    """Each shared-size weight file is the very inode its content's object is: nothing dangles."""
    store = root / ".tuneyard" / OBJECTS_FOLDER
    for path in weight_files(root):
        if path.stat().st_size >= 1 << 20:
            obj = object_path(store, sha256_of(path))
            assert obj.exists(), f"{path} has no object"
            assert os.path.samestat(path.stat(), obj.stat()), f"{path} is not a link to {obj}"


def du(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> dict:  # type: ignore[type-arg]
    """``runs du --format json`` as data."""
    return json.loads(run_cli(root, "runs", "du", *args, "--format", "json", capsys=capsys))


def store_bytes(root: Path) -> int:
    """What the object store holds on disk."""
    return sum(path.stat().st_size for path in (root / ".tuneyard" / OBJECTS_FOLDER).glob("*/*"))


def test_runs_of_one_base_store_each_weight_once_and_du_says_so(
    yard: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_linked_to_objects(yard)
    keep3 = next(yard.glob("**/keep3"))
    checkpoints = sorted(keep3.glob("checkpoint-*"))
    assert len(checkpoints) == 3
    # last/ is the newest checkpoint's weights, the export the same bytes as best/: one inode each
    assert os.path.samefile(keep3 / "last" / "model.safetensors", checkpoints[-1] / "model.safetensors")
    export = next(yard.glob("exports/keep3-export*"))
    assert os.path.samefile(export / "model.safetensors", keep3 / "best" / "model.safetensors")
    contents = {sha256_of(path) for path in weight_files(yard) if path.stat().st_size >= 1 << 20}
    inodes = {path.stat().st_ino for path in weight_files(yard) if path.stat().st_size >= 1 << 20}
    assert len(inodes) == len(contents)

    usage = du(yard, capsys)
    paths = [item["path"] for item in usage["artifacts"]]
    assert any(path.endswith("keep3") for path in paths) and any(path.endswith("lora-b") for path in paths)
    assert usage["stored"] < usage["logical"]
    table = run_cli(yard, "runs", "du", capsys=capsys)
    assert table.splitlines()[0].split() == ["path", "files", "logical", "stored", "exclusive"]
    assert f"stored / logical: {usage['stored'] / usage['logical']:.3f}" in table
    exported = du(yard, capsys, str(export))["artifacts"][0]
    assert exported["stored"] == exported["logical"] and exported["exclusive"] < exported["logical"]


def test_rm_gives_the_removed_runs_objects_back_and_gc_those_deleted_by_hand(
    yard: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # keep-3 pruning gave the pruned checkpoints' weights back as it deleted them
    assert du(yard, capsys)["unreferenced_objects"] == 0
    frozen2 = next(yard.glob("**/frozen2"))
    exclusive = du(yard, capsys, str(frozen2))["artifacts"][0]["exclusive"]
    sizes = {path.stat().st_ino: path.stat().st_size for path in weight_files(frozen2)}
    freed = sum(size for size in sizes.values() if size >= 1 << 20)  # the shared ones: 1 MiB and more
    assert 1 << 20 < freed <= exclusive  # its weights are its own; small files go with the folder
    before = store_bytes(yard)
    run_cli(yard, "runs", "rm", frozen2)
    assert store_bytes(yard) == before - freed
    assert_linked_to_objects(yard)  # what other runs hold is still there

    # A checkpoint deleted by hand leaves its objects held by the store alone: gc's part.
    keep3 = next(yard.glob("**/keep3"))
    held = [keep3 / part / "model.safetensors" for part in ("best", "last")]
    oldest = next(
        checkpoint
        for checkpoint in sorted(keep3.glob("checkpoint-*"))
        if not any((checkpoint / "model.safetensors").samefile(path) for path in held)
    )
    orphaned = (oldest / "model.safetensors").stat().st_size
    shutil.rmtree(oldest)
    orphans = du(yard, capsys)
    assert (orphans["unreferenced_objects"], orphans["unreferenced_bytes"]) == (1, orphaned)
    listed = run_cli(yard, "runs", "gc", "--dry-run", capsys=capsys).splitlines()
    assert sum(line.startswith("would remove  .tuneyard/objects/") for line in listed) == 1
    assert store_bytes(yard) == before - freed  # a dry run removes nothing
    run_cli(yard, "runs", "gc", "--older-than", "0")
    assert store_bytes(yard) == before - freed - orphaned
    assert du(yard, capsys)["unreferenced_objects"] == 0
    assert_linked_to_objects(yard)


# A writer (a real process) that publishes a folder whose weights are an existing object's
# content, and pauses between finding that object and linking to it, until told to go on.
PAUSED_WRITER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    root, paused, go_on = map(Path, sys.argv[1:4])
    real_link = os.link

    def pausing_link(source, target, *args, **kwargs):
        if "/.tuneyard/objects/" in os.fspath(source):  # linking the existing object into the folder
            paused.touch()
            while not go_on.exists():
                time.sleep(0.01)
        return real_link(source, target, *args, **kwargs)

    os.link = pausing_link
    from tuneyard.yard.storage import LOCAL
    from tuneyard.yard.writer import replace_folder

    with replace_folder(LOCAL, root / "models" / "second") as staged:
        (staged / "model.safetensors").write_bytes(bytes([1]) * (1 << 20))
    """
)


def test_gc_never_removes_an_object_a_concurrent_writer_is_linking(tmp_path: Path) -> None:
    from tuneyard.yard import Yard
    from tuneyard.yard.gc import OBJECT_REASON, find_leftovers, remove_leftovers
    from tuneyard.yard.storage import LOCAL
    from tuneyard.yard.writer import replace_folder

    root = tmp_path / "yard"
    (root / ".tuneyard").mkdir(parents=True)
    with replace_folder(LOCAL, root / "models" / "first") as staged:
        (staged / "model.safetensors").write_bytes(bytes([1]) * (1 << 20))
    shutil.rmtree(root / "models" / "first")  # deleted by hand: its object is held by the store alone
    yard = Yard.open(root)
    assert [leftover.reason for leftover in find_leftovers(yard, 0)].count(OBJECT_REASON) == 1

    paused, go_on = tmp_path / "paused", tmp_path / "go-on"
    writer = subprocess.Popen(
        [sys.executable, "-c", PAUSED_WRITER, str(root), str(paused), str(go_on)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while not paused.exists():
            assert writer.poll() is None, writer.communicate()[1]
            time.sleep(0.05)
        collector = threading.Thread(target=lambda: remove_leftovers(yard, find_leftovers(yard, 0)))
        collector.start()
        collector.join(timeout=2)
        assert collector.is_alive()  # gc waits for the writer's link instead of removing the object
    finally:
        go_on.touch()
        _, errors = writer.communicate(timeout=120)
    collector.join(timeout=60)
    assert writer.returncode == 0, errors
    assert_linked_to_objects(root)
    assert OBJECT_REASON not in [leftover.reason for leftover in find_leftovers(yard, 0)]


def test_a_release_killed_as_it_publishes_leaves_nothing_that_looks_complete(
    yard: Path,
    run_killed_at: Callable[..., subprocess.CompletedProcess[str]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    keep3 = next(yard.glob("**/keep3"))
    killed = run_killed_at("1.0.0", "--yard", yard, "release", keep3, "--name", "topics", "--notes", "first")
    assert killed.returncode == 9, killed.stderr
    version = yard / "releases" / "topics" / "1.0.0"
    assert not (version / "manifest.json").exists()
    assert "topics" not in run_cli(yard, "release", "ls", capsys=capsys)
    assert_linked_to_objects(yard)

    run_cli(yard, "runs", "gc", "--older-than", "0")
    assert not version.exists() and not list((yard / "releases" / "topics").glob(".tmp-*"))
    run_cli(yard, "release", keep3, "--name", "topics", "--notes", "again")
    assert (version / "manifest.json").is_file()
    assert_linked_to_objects(yard)


# gc as a real process that dies (os._exit, as SIGKILL would) at its second object removal.
KILLED_GC = textwrap.dedent(
    """
    import os, sys
    real, seen = os.unlink, []
    def dying(path, *args, **kwargs):
        if "/.tuneyard/objects/" in os.fspath(path):
            seen.append(path)
            if len(seen) == 2:
                os._exit(9)
        return real(path, *args, **kwargs)
    os.unlink = dying
    from tuneyard.cli import main
    main(["--yard", sys.argv[1], "runs", "gc", "--older-than", "0"])
    """
)


def test_gc_killed_while_removing_objects_leaves_every_artifact_whole(
    yard: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.rmtree(next(yard.glob("**/frozen2")))  # deleted by hand, not by `runs rm`: gc's work
    shutil.rmtree(next(yard.glob("**/keep3")))  # its export keeps best/'s bytes
    orphans = du(yard, capsys)["unreferenced_objects"]
    assert orphans > 2
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_GC, str(yard)], capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == 9, killed.stderr
    assert du(yard, capsys)["unreferenced_objects"] == orphans - 1
    assert_linked_to_objects(yard)
    run_cli(yard, "runs", "gc", "--older-than", "0")  # the store's lock died with the process
    assert du(yard, capsys)["unreferenced_objects"] == 0
    assert_linked_to_objects(yard)


def test_an_object_storage_publish_shares_nothing(tmp_path: Path) -> None:
    from tuneyard.yard.storage import LOCAL

    root = tmp_path / "working-copy"
    (root / ".tuneyard").mkdir(parents=True)
    staged = LOCAL.staging_folder(root / "models" / "m")
    (staged / "model.safetensors").write_bytes(b"\1" * (1 << 20))
    LOCAL.rename_into_place(staged, root / "models" / "m")  # ObjectStorage.publish's local half
    assert not (root / ".tuneyard" / OBJECTS_FOLDER).exists()
    assert (root / "models" / "m" / "model.safetensors").stat().st_nlink == 1


def test_where_no_hard_link_can_be_made_the_file_keeps_its_copy_and_the_log_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from tuneyard.yard import objects
    from tuneyard.yard.storage import LOCAL
    from tuneyard.yard.writer import replace_folder

    root = tmp_path / "yard"
    (root / ".tuneyard").mkdir(parents=True)
    weights = bytes([7]) * (1 << 20)
    with replace_folder(LOCAL, root / "models" / "first") as staged:
        (staged / "model.safetensors").write_bytes(weights)

    real_link = os.link

    def object_at_link_limit(source: Path, target: Path) -> None:
        """os.link when the object has as many links as the file system allows (65,000 on ext4)."""
        if Path(target).exists():
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST))
        if OBJECTS_FOLDER in Path(source).parts:
            raise OSError(errno.EMLINK, os.strerror(errno.EMLINK))
        real_link(source, target)

    monkeypatch.setattr(objects.os, "link", object_at_link_limit)
    with replace_folder(LOCAL, root / "models" / "second") as staged:
        (staged / "model.safetensors").write_bytes(weights)
    second = root / "models" / "second" / "model.safetensors"
    assert second.read_bytes() == weights and second.stat().st_nlink == 1
    log = (root / ".tuneyard" / OBJECTS_FOLDER / objects.UNSHARED_LOG).read_text()
    assert f"{second}  " in log and ("copy (Too many links)" in log or "reflinked" in log)
    assert not list((root / "models" / "second").glob(".tmp-*"))


def test_with_the_store_turned_off_publishes_keep_their_own_copies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuneyard.yard.storage import LOCAL
    from tuneyard.yard.writer import replace_folder

    root = tmp_path / "yard"
    (root / ".tuneyard").mkdir(parents=True)
    weights = bytes([3]) * (1 << 20)
    monkeypatch.setenv("TUNEYARD_SHARED_OBJECTS", "off")
    for name in ("best", "last"):
        with replace_folder(LOCAL, root / "run" / name) as staged:
            (staged / "model.safetensors").write_bytes(weights)
    for name in ("best", "last"):
        published = root / "run" / name / "model.safetensors"
        assert published.read_bytes() == weights and published.stat().st_nlink == 1
    assert not (root / ".tuneyard" / OBJECTS_FOLDER).exists()

    monkeypatch.setenv("TUNEYARD_SHARED_OBJECTS", "on")
    with replace_folder(LOCAL, root / "run" / "again") as staged:
        (staged / "model.safetensors").write_bytes(weights)
    assert (root / "run" / "again" / "model.safetensors").stat().st_nlink == 2  # it and its object


def test_a_mistyped_store_switch_is_refused_before_any_work(
    cli: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TUNEYARD_SHARED_OBJECTS", "of")
    result = cli("--yard", tmp_path / "yard", "runs", "ls")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: TUNEYARD_SHARED_OBJECTS='of' is neither on nor off")
    assert "TUNEYARD_SHARED_OBJECTS=off" in result.stderr
