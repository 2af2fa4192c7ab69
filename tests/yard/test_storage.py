"""LocalStorage: what is published is flushed to disk first, and a half-done replace can be undone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tuneyard.yard.storage import LOCAL


@pytest.fixture
def disk_events(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every fsync (by the path of its descriptor) and rename, in the order they happen."""
    events: list[tuple[str, str]] = []
    real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace

    def fsync(descriptor: int) -> None:
        events.append(("fsync", os.readlink(f"/proc/self/fd/{descriptor}")))
        real_fsync(descriptor)

    def rename(source: object, target: object) -> None:
        events.append(("rename", str(target)))
        real_rename(source, target)  # type: ignore[arg-type]

    def replace(source: object, target: object) -> None:
        events.append(("rename", str(target)))
        real_replace(source, target)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    monkeypatch.setattr(os, "replace", replace)
    return events


def test_a_written_file_is_on_disk_before_its_name_appears_and_the_name_after(
    tmp_path: Path, disk_events: list[tuple[str, str]]
) -> None:
    target = tmp_path / "config.yaml"
    LOCAL.write_text(target, "lr: 0.1\n")
    assert target.read_text() == "lr: 0.1\n"
    kinds = [kind for kind, _ in disk_events]
    assert kinds == ["fsync", "rename", "fsync"]
    assert Path(disk_events[0][1]).name.startswith(
        ".tmp-config.yaml-"
    )  # the content, under its temporary name
    assert disk_events[2] == ("fsync", str(tmp_path))  # the folder that now holds the name


def test_a_published_folder_has_every_file_and_folder_on_disk_before_it_appears(
    tmp_path: Path, disk_events: list[tuple[str, str]]
) -> None:
    target = tmp_path / "best"
    staged = LOCAL.staging_folder(target)
    (staged / "sub").mkdir()
    (staged / "model.safetensors").write_bytes(b"w")
    (staged / "sub" / "tokenizer.json").write_text("{}")
    LOCAL.publish(staged, target)
    rename = disk_events.index(("rename", str(target)))
    synced_before = {
        Path(path).relative_to(staged).as_posix() for kind, path in disk_events[:rename] if kind == "fsync"
    }
    assert synced_before == {".", "sub", "model.safetensors", "sub/tokenizer.json"}
    assert ("fsync", str(tmp_path)) in disk_events[rename:]
    assert (target / "sub" / "tokenizer.json").read_text() == "{}"


def test_replacing_a_folder_keeps_the_old_one_until_the_new_one_is_in(tmp_path: Path) -> None:
    target = tmp_path / "best"
    target.mkdir()
    (target / "weights").write_text("old")
    staged = LOCAL.staging_folder(target)
    (staged / "weights").write_text("new")
    LOCAL.publish(staged, target)
    assert (target / "weights").read_text() == "new"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["best"]


def test_a_version_moved_aside_by_a_killed_replace_is_put_back(tmp_path: Path) -> None:
    (tmp_path / ".tmp-old-best-4242-0badc0de").mkdir()
    (tmp_path / ".tmp-old-best-4242-0badc0de" / "weights").write_text("old")
    (tmp_path / ".tmp-old-last-4242-12345678").mkdir()  # its newer version made it in
    (tmp_path / "last").mkdir()
    assert LOCAL.restore_replaced(tmp_path) == ["best"]
    assert (tmp_path / "best" / "weights").read_text() == "old"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["best", "last"]


def test_publishing_a_new_file_or_folder_never_replaces_one_that_appeared_meanwhile(tmp_path: Path) -> None:
    LOCAL.write_new(tmp_path / "table.csv", b"mine\n")
    assert (tmp_path / "table.csv").read_bytes() == b"mine\n"
    with pytest.raises(FileExistsError):  # someone else's, written after any check could look
        LOCAL.write_new(tmp_path / "table.csv", b"theirs\n")
    assert (tmp_path / "table.csv").read_bytes() == b"mine\n"

    target = tmp_path / "pack"
    staged = LOCAL.staging_folder(target)
    (staged / "model.safetensors").write_bytes(b"new")
    target.mkdir()
    (target / "notes.txt").write_text("a user's folder")
    with pytest.raises(FileExistsError):
        LOCAL.publish_new(staged, target)
    assert [path.name for path in target.iterdir()] == ["notes.txt"]
    assert (staged / "model.safetensors").read_bytes() == b"new"  # left to the caller
    LOCAL.delete(staged)
    LOCAL.delete(target)
    staged = LOCAL.staging_folder(target)
    (staged / "model.safetensors").write_bytes(b"new")
    LOCAL.publish_new(staged, target)
    assert [path.name for path in target.iterdir()] == ["model.safetensors"]
    assert sorted(path.name for path in tmp_path.iterdir()) == ["pack", "table.csv"]  # no .tmp- left
