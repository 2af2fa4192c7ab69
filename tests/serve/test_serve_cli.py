"""``tuneyard serve``'s bad input: an error naming the problem and the fix, exit 2, nothing served."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import pytest

from tuneyard.cli import main
from tuneyard.yard import Manifest, Yard


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stopped:
        main(list(args))
    return int(stopped.value.code or 0), capsys.readouterr().err


def test_a_port_in_use_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        code, err = run_cli(capsys, "--yard", str(tmp_path), "serve", "--port", str(port))
    assert code == 2
    assert f"error: cannot listen on 127.0.0.1:{port}" in err and "--port 8800" in err


def test_an_index_it_cannot_read_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    yard = Yard.open(tmp_path)
    yard.index.upsert(Manifest(kind="run", name="r", path="outputs/r"))
    yard.index.connection.execute("PRAGMA user_version = 3")  # as an older tuneyard left it
    yard.index.close()
    code, err = run_cli(capsys, "--yard", str(tmp_path), "serve", "--port", "1")
    assert code == 2
    assert "has schema version 3" in err and "tuneyard runs ls" in err
    connection = sqlite3.connect(tmp_path / ".tuneyard" / "index.db")
    assert connection.execute("PRAGMA user_version").fetchone()[0] == 3  # not migrated by serve
