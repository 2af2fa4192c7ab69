"""``tuneyard serve`` as a real process on 127.0.0.1, over the yard of :mod:`served_yard`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest
from served_yard import Served, build_yard, free_port
from servers import wait_until_serving


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``python -m tuneyard --yard Y serve --port P`` (default host), stopped when the session ends."""
    root = tmp_path_factory.mktemp("serve") / "yard"
    root.mkdir()
    yard = build_yard(root)
    port = free_port()
    log = (root.parent / "serve.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tuneyard", "--yard", str(root), "serve", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    wait_until_serving(process, f"{url}/api/runs", root.parent / "serve.log", seconds=60)
    yield Served(url, port, yard, process)
    process.terminate()
    process.wait(timeout=10)
    log.close()
