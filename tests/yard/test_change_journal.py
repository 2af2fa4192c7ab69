"""The change journal of an S3 yard (moto's server on 127.0.0.1): a refresh lists the journal's
recent records, not the yard, and reads only the manifests they name.

Requests are counted in the server's own request log. Each machine is a
``$TUNEYARD_YARD_CACHE`` folder; the bucket is the only thing they share. Records of a
writer whose clock is off are made by putting the record's key directly, as that writer would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import s3fs
from servers import S3Server
from test_s3_index_refresh import listed, manifest_reads, requests_of, write_artifacts

from tuneyard.yard.change_journal import (
    JOURNAL,
    MINUTE_NS,
    RETENTION_NS,
    WINDOW_NS,
    Cursor,
    read_cursor,
    stamp,
    write_cursor,
)


def key_of(yard_url: str, relative: str) -> str:
    return f"{yard_url.removeprefix('s3://')}/{relative}"


def listings(requests: list[str]) -> list[dict[str, list[str]]]:
    """The query of each listing request (``GET /bucket?list-type=2&prefix=...``)."""
    queries = [parse_qs(urlsplit(request.split()[1]).query, keep_blank_values=True) for request in requests]
    return [query for query in queries if "list-type" in query]


def foreign_write(yard_url: str, folder: Path, metrics: dict[str, float]) -> None:
    """Rewrite an artifact's manifest with other metrics, as a tool other than tuneyard (s3fs) would:
    no change record."""
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    key = key_of(yard_url, f"{folder.as_posix()}/manifest.json")
    manifest = json.loads(fs.cat_file(key))
    fs.pipe_file(key, json.dumps({**manifest, "metrics": metrics}).encode())


def put_record(yard_url: str, written_ns: int, folder: Path) -> str:
    """A change record for ``folder``'s manifest named by a writer whose clock read ``written_ns``."""
    name = f"{stamp(written_ns)}-skewed-host-1-0/{folder.as_posix()}"
    s3fs.S3FileSystem(skip_instance_cache=True).pipe_file(key_of(yard_url, f"{JOURNAL}/{name}"), b"")
    return name


def journal(yard_url: str) -> list[str]:
    """The record names the bucket holds."""
    prefix = key_of(yard_url, f"{JOURNAL}/")
    return sorted(
        name.removeprefix(prefix) for name in s3fs.S3FileSystem(skip_instance_cache=True).find(prefix)
    )


def test_an_up_to_date_ls_lists_the_journal_not_the_yard_and_reads_no_manifest(
    cli: Callable[..., object], s3_server: S3Server, s3_yard: str
) -> None:
    write_artifacts(s3_yard, [f"model-{number}" for number in range(5)])
    assert len(listed(cli, s3_yard)) == 5  # the first refresh: the full listing

    up_to_date = requests_of(s3_server, s3_yard, lambda: listed(cli, s3_yard, "-n", "1"))

    reachable, journal_page = listings(up_to_date)  # check_reachable's, then the refresh's only one
    assert reachable["prefix"] == [""] and reachable["delimiter"] == ["/"]
    assert journal_page["prefix"] == [key_of(s3_yard, JOURNAL).split("/", 1)[1] + "/"], journal_page
    assert journal_page["start-after"][0] > journal_page["prefix"][0]  # from the cursor on
    assert len(up_to_date) == 2 and not manifest_reads(up_to_date), up_to_date


def test_what_machine_b_writes_and_removes_is_what_as_next_ls_reads(
    cli: Callable[..., object],
    s3_server: S3Server,
    s3_yard: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    old = write_artifacts(s3_yard, ["kept", "removed"])
    assert cli("--yard", s3_yard, "runs", "reindex", "-q").exit_code == 0

    monkeypatch.setenv("TUNEYARD_YARD_CACHE", str(tmp_path / "machine-b"))
    new = write_artifacts(s3_yard, ["new-1", "new-2", "new-3"])
    assert cli("--yard", s3_yard, "runs", "rm", old[1].as_posix()).exit_code == 0

    monkeypatch.setenv("TUNEYARD_YARD_CACHE", str(tmp_path / "machine-a"))
    rows: dict[str, dict[str, float]] = {}
    refresh = requests_of(s3_server, s3_yard, lambda: rows.update(listed(cli, s3_yard)))

    assert sorted(rows) == ["kept", "new-1", "new-2", "new-3"]
    reads = {
        read.split()[1].removeprefix("/").split("/", 1)[1]: read.split()[3]
        for read in manifest_reads(refresh)
    }
    expected = {
        key_of(s3_yard, f"{folder.as_posix()}/manifest.json").split("/", 1)[1]: "200" for folder in new
    }
    expected[key_of(s3_yard, f"{old[1].as_posix()}/manifest.json").split("/", 1)[1]] = "404"  # asked: gone
    assert reads == expected, refresh
    assert len(listings(refresh)) == 2, refresh  # check_reachable's and the journal page


def test_a_record_before_the_window_is_not_read_and_one_from_a_clock_ten_minutes_behind_is(
    cli: Callable[..., object], s3_yard: str
) -> None:
    before, behind = write_artifacts(s3_yard, ["before-window", "clock-behind"])
    assert cli("--yard", s3_yard, "runs", "reindex", "-q").exit_code == 0
    now = time.time_ns()
    foreign_write(s3_yard, before, {"f1": 0.1})
    put_record(s3_yard, now - WINDOW_NS - MINUTE_NS, before)  # older than any record this cursor needs
    foreign_write(s3_yard, behind, {"f1": 0.2})
    put_record(s3_yard, now - 10 * MINUTE_NS, behind)  # landed now, named by a clock 10 minutes slow

    assert listed(cli, s3_yard) == {"before-window": {}, "clock-behind": {"f1": 0.2}}


def test_gc_deletes_records_older_than_the_retention_and_keeps_newer_ones(
    cli: Callable[..., object], s3_yard: str
) -> None:
    (folder,) = write_artifacts(s3_yard, ["model"])
    now = time.time_ns()
    expired = put_record(s3_yard, now - RETENTION_NS - 60 * MINUTE_NS, folder)
    recent = put_record(s3_yard, now - RETENTION_NS + 60 * MINUTE_NS, folder)
    written = [name for name in journal(s3_yard) if name not in (expired, recent)]
    assert len(written) == 1  # the writer's own record of the manifest

    collected = cli("--yard", s3_yard, "runs", "gc")

    assert collected.exit_code == 0, collected.stderr
    assert f"removed  1 change record in {JOURNAL}/  (older than 7 days)" in collected.stdout
    assert collected.stdout.count(JOURNAL) == 1, collected.stdout  # one line, however many records
    assert journal(s3_yard) == sorted([recent, *written])


def test_a_cursor_older_than_the_retention_lists_the_whole_yard_again(
    cli: Callable[..., object], s3_server: S3Server, s3_yard: str
) -> None:
    from tuneyard.yard import Yard

    (folder,) = write_artifacts(s3_yard, ["model"])
    assert listed(cli, s3_yard) == {"model": {}}
    foreign_write(s3_yard, folder, {"f1": 0.3})  # no record: a refresh from the journal cannot see it
    assert listed(cli, s3_yard) == {"model": {}}

    on_a = Yard.open(s3_yard)
    cursor = read_cursor(on_a)
    assert cursor is not None
    write_cursor(on_a, Cursor(cursor.time_ns - RETENTION_NS, cursor.seen))  # a machine back from a long pause
    rows: dict[str, dict[str, float]] = {}
    refresh = requests_of(s3_server, s3_yard, lambda: rows.update(listed(cli, s3_yard)))

    assert rows == {"model": {"f1": 0.3}}
    yard_prefix = key_of(s3_yard, "").split("/", 1)[1].rstrip("/")
    assert yard_prefix in [query["prefix"][0].rstrip("/") for query in listings(refresh)], (
        refresh
    )  # the full one
    after = read_cursor(Yard.open(s3_yard))
    assert after is not None and after.time_ns > cursor.time_ns  # back on the journal from now on


def test_rm_of_a_folder_named_like_a_pattern_empties_it_in_the_bucket_and_other_machines_drop_it(
    cli: Callable[..., object], s3_yard: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (folder,) = write_artifacts(s3_yard, ["m[rank-8]"])  # fsspec takes [...] for a pattern
    assert listed(cli, s3_yard) == {"m[rank-8]": {}}
    monkeypatch.setenv("TUNEYARD_YARD_CACHE", str(tmp_path / "machine-b"))

    removed = cli("--yard", s3_yard, "runs", "rm", folder.as_posix())

    assert removed.exit_code == 0, removed.stderr
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    assert fs.find(key_of(s3_yard, folder.as_posix())) == []
    monkeypatch.setenv("TUNEYARD_YARD_CACHE", str(tmp_path / "machine-a"))
    assert listed(cli, s3_yard) == {}
