"""The SQLite index: WAL, numbered migrations, and reindex rebuilding it exactly from files."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tuneyard.yard import Manifest, Parent, Yard, write_manifest
from tuneyard.yard.index import MIGRATIONS, Index, IndexCorruptError


def table_rows(yard: Yard) -> dict[str, list[tuple[object, ...]]]:
    connection = yard.index.connection
    return {
        "artifacts": connection.execute("SELECT * FROM artifacts ORDER BY path").fetchall(),
        "metrics": connection.execute("SELECT * FROM metrics ORDER BY artifact_id, key").fetchall(),
        "parents": connection.execute("SELECT * FROM parents ORDER BY artifact_id, parent_path").fetchall(),
        "manifests": connection.execute("SELECT * FROM manifests ORDER BY artifact_id").fetchall(),
    }


@pytest.fixture
def filled_yard(yard: Yard, make_artifact: Callable[..., Path], tmp_path: Path) -> Yard:
    base = make_artifact(
        "compressed",
        layout={"model": "bert-base", "method": "fwsvd", "rank": 64},
        arch="bert",
        method="fwsvd",
        rank=64,
        task="sst2",
        config={"hf_token": "hf_secret", "ratio": None},
        metrics={"sst2": {"validation": {"accuracy": 0.91, "f1": 0.9}}, "note": "text"},
    )
    base_manifest = json.loads((base / "manifest.json").read_text())
    run = yard.start_run(
        Manifest(
            kind="finetuned",
            name="x",
            arch="bert",
            method="fwsvd",
            rank=64,
            strategy="lowrank",
            parents=[Parent(id=base_manifest["id"], path=base_manifest["path"], role="init")],
        ),
        yard.target_path("finetuned", arch="bert", method="fwsvd", name=base.name),
    )
    # A nested manifest (a run's best/ model) is part of the run, never an artifact of its own.
    with run.subfolder("best") as best:
        write_manifest(best, Manifest(kind="model", name="best", path=yard.relative(run.path / "best")))
    yard.register(Manifest(kind="model", name="best", path=yard.relative(run.path / "best")))
    run.manifest.metrics = {"accuracy": 0.88}
    run.complete()
    # Written outside the yard with --output-dir: still the yard's artifact.
    outside = yard.target_path("export", output_dir=tmp_path / "elsewhere" / "export-1")
    with yard.create(
        Manifest(kind="export", name="e", parents=[Parent(path=run.manifest.path)]), outside
    ) as w:
        (w.path / "model.gguf").write_bytes(b"GGUF")
    return yard


def test_index_uses_wal_and_the_latest_migration(filled_yard: Yard) -> None:
    connection = filled_yard.index.connection
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert filled_yard.index.version == len(MIGRATIONS) == 5


def test_indexed_rows_hold_columns_metrics_and_lineage(filled_yard: Yard, tmp_path: Path) -> None:
    rows = {row["kind"]: row for row in filled_yard.query()}
    assert set(rows) == {"compressed", "finetuned", "export"}  # best/ is not an artifact of its own
    assert rows["compressed"]["metrics"] == {"sst2.validation.accuracy": 0.91, "sst2.validation.f1": 0.9}
    assert rows["export"]["path"] == (tmp_path / "elsewhere" / "export-1").as_posix()
    stored = filled_yard.query(kind="compressed", with_manifest=True)[0]["manifest"]
    assert stored["config"]["hf_token"] == "***redacted***"
    children = filled_yard.index.children(rows["compressed"]["id"], rows["compressed"]["path"])
    assert [child["kind"] for child in children] == ["finetuned"]
    by_path = filled_yard.index.children(rows["finetuned"]["id"], rows["finetuned"]["path"])
    assert [child["kind"] for child in by_path] == ["export"]


def test_reindex_rebuilds_exactly_the_same_rows_from_files_alone(filled_yard: Yard) -> None:
    before = table_rows(filled_yard)
    filled_yard.index.close()
    (filled_yard.root / ".tuneyard" / "index.db").unlink()
    rebuilt = Yard.open(filled_yard.root)
    report = rebuilt.reindex()
    assert report.indexed == 3 and report.problems == []
    assert table_rows(rebuilt) == before


def test_reindex_skips_temp_folders_and_reports_bad_or_copied_manifests(
    filled_yard: Yard, make_artifact: Callable[..., Path]
) -> None:
    root = filled_yard.root
    temp = root / "exports" / ".tmp-half-123-deadbeef"
    temp.mkdir(parents=True)
    write_manifest(temp, Manifest(kind="export", name="half"))
    broken = root / "exports" / "broken"
    broken.mkdir()
    (broken / "manifest.json").write_text('{"kind": "run"}')
    copied = make_artifact("export", layout={"name": "orig"})
    shutil.copytree(copied, root / "exports" / "copy-of-orig")
    report = filled_yard.reindex()
    assert report.indexed == 5  # orig, the broken one (listed as corrupt) and the 3 of filled_yard
    messages = sorted(f"{problem.path.relative_to(root)}: {problem.message}" for problem in report.problems)
    assert messages == [
        "exports/broken/manifest.json: not a valid manifest: name: Field required",
        f"exports/copy-of-orig: has the same manifest id as {root / 'exports/orig'} (a copy?); skipped",
    ]


def test_an_unparsable_manifest_is_listed_as_corrupt_with_its_path(filled_yard: Yard) -> None:
    broken = filled_yard.root / "exports" / "broken"
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text('{"kind": "export", "name": ')  # cut short
    filled_yard.reindex()
    [row] = filled_yard.query(status="corrupt", with_manifest=True)
    assert (row["path"], row["name"], row["kind"]) == ("exports/broken", "broken", "unknown")
    assert row["manifest"]["problem"].startswith("not a valid manifest: (manifest): Invalid JSON")
    (broken / "manifest.json").write_text('{"kind": "export"}')
    filled_yard.reindex()
    assert filled_yard.query(status="corrupt")[0]["kind"] == "export"  # what could be read of it


def test_a_missing_index_is_rebuilt_by_the_first_query(filled_yard: Yard) -> None:
    before = table_rows(filled_yard)
    filled_yard.index.close()
    (filled_yard.root / ".tuneyard" / "index.db").unlink()
    reopened = Yard.open(filled_yard.root)
    assert len(reopened.query()) == 3
    assert table_rows(reopened) == before


def test_a_folder_moved_by_hand_is_found_where_it_is(filled_yard: Yard) -> None:
    root = filled_yard.root
    (root / "archive").mkdir()
    (root / "compressed_models" / "bert-base_fwsvd_r64").rename(root / "archive" / "old-bert")
    filled_yard.reindex()
    assert filled_yard.query(kind="compressed")[0]["path"] == "archive/old-bert"


def test_a_version_1_index_migrates_to_the_latest_schema_with_its_data(
    filled_yard: Yard, tmp_path: Path
) -> None:
    database = tmp_path / "v1.db"
    old = sqlite3.connect(database, isolation_level=None)
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            old.execute(statement)
    old.execute("PRAGMA user_version = 1")
    current = filled_yard.index.connection
    # Version 1 kept the manifest as the artifacts table's last column, and had no task_type or archived.
    later = ("task_type", "archived")
    columns = [row[1] for row in current.execute("PRAGMA table_info(artifacts)") if row[1] not in later]
    for row in current.execute(
        f"SELECT {', '.join(f'a.{c}' for c in columns)}, m.json "
        "FROM artifacts AS a JOIN manifests AS m ON m.artifact_id = a.id"
    ):
        old.execute(f"INSERT INTO artifacts VALUES ({', '.join('?' * len(row))})", row)
    old.close()
    migrated = Index.open(database)
    assert migrated.version == len(MIGRATIONS) == 5
    for table in ("artifacts", "manifests"):
        assert sorted(migrated.connection.execute(f"SELECT * FROM {table}")) == sorted(
            current.execute(f"SELECT * FROM {table}")
        )
    assert sorted(migrated.connection.execute("SELECT parent_path, role FROM parents").fetchall()) == sorted(
        current.execute("SELECT parent_path, role FROM parents").fetchall()
    )


def test_a_corrupt_index_says_how_to_rebuild_it(yard: Yard) -> None:
    (yard.root / ".tuneyard").mkdir()
    (yard.root / ".tuneyard" / "index.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(IndexCorruptError) as caught:
        yard.index  # noqa: B018
    assert "tuneyard runs reindex" in (caught.value.hint or "")


def test_an_index_from_a_newer_tuneyard_is_refused_not_misread(yard: Yard) -> None:
    yard.index.connection.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    yard.index.close()
    with pytest.raises(IndexCorruptError, match="schema version 6 is newer than this tuneyard's") as caught:
        Yard.open(yard.root).index  # noqa: B018
    assert "upgrade tuneyard" in (caught.value.hint or "")


OPENER = """
import sys, time
from pathlib import Path
from tuneyard.yard.index import Index
go = Path(sys.argv[2])
(go.parent / f"ready-{sys.argv[3]}").write_text("")
while not go.exists():
    time.sleep(0.0005)
print(Index.open(Path(sys.argv[1])).version)
"""


def test_processes_creating_a_fresh_index_at_once_all_open_it(tmp_path: Path) -> None:
    """A brand-new database switched to WAL by several processes at once: none may fail."""
    go, database = tmp_path / "go", tmp_path / ".tuneyard" / "index.db"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "src")}
    openers = [
        subprocess.Popen(
            [sys.executable, "-c", OPENER, str(database), str(go), str(number)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for number in range(8)
    ]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < len(openers):
        assert time.monotonic() < deadline and all(opener.poll() is None for opener in openers)
        time.sleep(0.01)
    go.write_text("go")
    results = [opener.communicate(timeout=120) for opener in openers]
    assert [error.strip().splitlines()[-1:] for _, error in results if error.strip()] == []
    assert [output.strip() for output, _ in results] == [str(len(MIGRATIONS))] * len(openers)


def test_the_field_table_names_exactly_the_index_columns_and_manifest_fields(tmp_path: Path) -> None:
    from tuneyard.yard.fields import COLUMNS, FILTERS, TABLE
    from tuneyard.yard.manifest import Manifest

    index = Index.open(tmp_path / "index.db")
    stored = {row[1] for row in index.connection.execute("PRAGMA table_info(artifacts)")}
    assert stored == set(COLUMNS)
    assert set(COLUMNS) <= set(Manifest.model_fields)
    assert set(FILTERS) <= set(COLUMNS) and set(TABLE) <= set(COLUMNS)
