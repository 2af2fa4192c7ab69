"""The index of a yard on S3 follows the bucket (moto's server on 127.0.0.1); how a refresh
lists only the change journal: test_change_journal.py.

Requests are counted in the server's own request log: the HTTP requests that reached it.
Each machine is a ``$TUNEYARD_YARD_CACHE`` folder; the bucket is the only thing they share.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import s3fs
from servers import S3Server

# check_reachable's listing of the bucket, the listing of the change journal (one page up to 1,000 records)
LISTINGS = 2


def bucket(yard_url: str) -> str:
    return yard_url.removeprefix("s3://").split("/")[0]


def write_artifacts(yard_url: str, names: list[str]) -> list[Path]:
    """Compressed-model artifacts written through the library's writer on this machine; their
    paths in the yard."""
    from tuneyard.yard import Manifest, Yard

    yard = Yard.open(yard_url)
    folders = []
    for name in names:
        manifest = Manifest(kind="compressed", name=name, path="", arch="bert")
        with yard.create(manifest, yard.root / "compressed_models" / name) as writer:
            (writer.path / "weights.bin").write_bytes(b"0" * 64)
        folders.append(writer.path.relative_to(yard.root))
    return folders


def requests_of(server: S3Server, yard_url: str, action: Callable[[], object]) -> list[str]:
    """The requests for the yard's bucket that ``action`` made."""
    before = len(server.requests(bucket(yard_url)))
    action()
    return server.requests(bucket(yard_url))[before:]


def manifest_reads(requests: list[str]) -> list[str]:
    return [request for request in requests if "manifest.json" in request and not request.startswith("PUT")]


def listed(cli: Callable[..., object], yard_url: str, *args: str) -> dict[str, dict[str, float]]:
    result = cli("--yard", yard_url, "runs", "ls", "--format", "json", *args)
    assert result.exit_code == 0, result.stderr
    return {row["name"]: row["metrics"] for row in json.loads(result.stdout)}


def test_reindex_reads_each_manifest_once_and_the_next_ls_reads_none(
    cli: Callable[..., object],
    s3_server: S3Server,
    s3_yard: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    names = [f"model-{number}" for number in range(8)]
    write_artifacts(s3_yard, names)
    monkeypatch.setenv("TUNEYARD_YARD_CACHE", str(tmp_path / "machine-b"))

    reindexing = requests_of(s3_server, s3_yard, lambda: cli("--yard", s3_yard, "runs", "reindex", "-q"))
    rows: dict[str, dict[str, float]] = {}
    listing = requests_of(s3_server, s3_yard, lambda: rows.update(listed(cli, s3_yard)))

    assert sorted(rows) == names
    reads = manifest_reads(reindexing)
    assert len(reads) == len(names) and all(read.startswith("GET ") for read in reads), reindexing
    assert len(reindexing) == LISTINGS + 1 + len(names), reindexing  # and the listing of the yard's keys
    assert len(listing) == LISTINGS and not manifest_reads(listing), listing


def test_what_machine_b_writes_after_as_reindex_is_in_as_next_ls_which_reads_only_that(
    cli: Callable[..., object],
    s3_server: S3Server,
    s3_yard: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tuneyard.yard import Yard
    from tuneyard.yard.manifest import update_manifest

    first, _ = write_artifacts(s3_yard, ["first", "second"])
    assert cli("--yard", s3_yard, "runs", "reindex", "-q").exit_code == 0

    monkeypatch.setenv("TUNEYARD_YARD_CACHE", str(tmp_path / "machine-b"))
    write_artifacts(s3_yard, ["late"])
    on_b = Yard.open(s3_yard)
    update_manifest(on_b.root / first, lambda manifest: manifest.metrics.update({"f1": 0.5}), on_b.storage)

    monkeypatch.setenv("TUNEYARD_YARD_CACHE", str(tmp_path / "machine-a"))
    rows: dict[str, dict[str, float]] = {}
    refresh = requests_of(s3_server, s3_yard, lambda: rows.update(listed(cli, s3_yard)))

    assert rows == {"first": {"f1": 0.5}, "second": {}, "late": {}}
    assert sorted(read.split()[1].rsplit("/", 2)[1] for read in manifest_reads(refresh)) == ["first", "late"]


def test_reindex_on_s3_indexes_what_a_local_reindex_of_the_same_folders_does(
    s3_yard: str, tmp_path: Path
) -> None:
    """Nested manifests: an experiment's runs are artifacts, a run's ``best/`` is a part of it."""
    from tuneyard.yard import Manifest, Yard
    from tuneyard.yard.manifest import write_manifest

    local = tmp_path / "local-yard"
    tree = {
        "experiments/sweep": "experiment",
        "experiments/sweep/run-1": "finetuned",
        "experiments/sweep/run-1/best": "finetuned",
        "outputs/p/run": "finetuned",
        "outputs/p/run/best": "finetuned",
        "compressed_models/m": "compressed",
        "compressed_models/m[rank-8]": "compressed",  # a name fsspec would take for a pattern
    }
    for relative, kind in tree.items():
        folder = local / relative
        folder.mkdir(parents=True, exist_ok=True)
        write_manifest(folder, Manifest(kind=kind, name=folder.name, path=relative, status="complete"))
    s3fs.S3FileSystem(skip_instance_cache=True).put(
        f"{local}/", s3_yard.removeprefix("s3://"), recursive=True
    )

    on_disk, on_s3 = Yard(local), Yard.open(s3_yard)
    assert on_disk.reindex().indexed == on_s3.reindex().indexed == 5
    assert sorted(row["path"] for row in on_s3.query()) == sorted(row["path"] for row in on_disk.query())


def test_a_manifest_overwritten_by_non_json_in_the_bucket_is_listed_corrupt_with_its_path(
    cli: Callable[..., object], s3_yard: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuneyard.yard import Yard

    folders = write_artifacts(s3_yard, ["first", "broken", "last"])
    assert sorted(listed(cli, s3_yard)) == ["broken", "first", "last"]  # machine A's index has them all
    monkeypatch.setenv("TUNEYARD_YARD_CACHE", str(tmp_path / "machine-b"))
    on_b = Yard.open(s3_yard)  # a writer on another machine puts bytes that are no manifest (and its record)
    on_b.storage.write_bytes(on_b.root / folders[1] / "manifest.json", b"\x00 not json {")
    monkeypatch.setenv("TUNEYARD_YARD_CACHE", str(tmp_path / "machine-a"))

    def statuses() -> dict[str, tuple[str, str]]:
        done = cli("--yard", s3_yard, "runs", "ls", "--format", "json")
        assert done.exit_code == 0, done.stderr
        return {row["name"]: (row["status"], row["path"]) for row in json.loads(done.stdout)}

    expected = {
        "first": ("complete", folders[0].as_posix()),
        "broken": ("corrupt", folders[1].as_posix()),
        "last": ("complete", folders[2].as_posix()),
    }
    assert statuses() == expected  # A's incremental refresh: the rewritten manifest read again
    monkeypatch.setenv("TUNEYARD_YARD_CACHE", str(tmp_path / "machine-b"))  # no local copy of any file
    reindexed = cli("--yard", s3_yard, "runs", "reindex")
    assert reindexed.exit_code == 0, reindexed.stderr
    assert statuses() == expected
    monkeypatch.setenv("TUNEYARD_YARD_CACHE", str(tmp_path / "machine-c"))  # the first ls builds the index
    assert statuses() == expected
