"""``tuneyard --yard s3://... serve`` on one machine shows what another machine writes to the
bucket (moto's S3 server and the view are real processes on 127.0.0.1).

Each machine is a ``$TUNEYARD_YARD_CACHE`` folder; the bucket is all they share. Machine A
writes through the library's writer; the view runs as machine B.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from served_yard import free_port
from servers import wait_until_serving


def png_bytes() -> bytes:
    """A real 16x8 PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", (16, 8), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def write_eval(yard_url: str, name: str, plot: bytes) -> None:
    """An eval artifact with one plot (a confusion matrix, say), written on this process's machine."""
    from tuneyard.yard import Manifest, Yard

    yard = Yard.open(yard_url)
    with yard.create(Manifest(kind="eval", name=name, path=""), yard.root / "evals" / name) as writer:
        (writer.path / "confusion.png").write_bytes(plot)


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        data: bytes = response.read()
        return data


def listed(view: str) -> dict[str, str]:
    """The view's runs, name -> id."""
    return {row["name"]: row["id"] for row in json.loads(get(f"{view}/api/runs"))}


def listed_within(view: str, wanted: set[str], seconds: float = 30) -> dict[str, str]:
    """The view's runs once they are exactly ``wanted`` (the view refreshes every few seconds)."""
    deadline = time.monotonic() + seconds
    while (runs := listed(view)).keys() != wanted and time.monotonic() < deadline:
        time.sleep(0.5)
    return runs


@pytest.fixture
def view_on_machine_b(s3_yard: str, tmp_path: Path) -> Iterator[str]:
    """``tuneyard --yard s3_yard serve`` with machine B's cache; its URL."""
    port = free_port()
    log_path = tmp_path / "serve.log"
    environment = {**os.environ, "TUNEYARD_YARD_CACHE": str(tmp_path / "machine-b")}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tuneyard", "--yard", s3_yard, "serve", "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=environment,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            wait_until_serving(process, f"{url}/api/runs", log_path, seconds=60)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=10)


def test_the_view_of_an_s3_yard_shows_another_machines_runs_and_plots_as_they_come(
    s3_yard: str, view_on_machine_b: str
) -> None:
    plot = png_bytes()
    assert listed(view_on_machine_b) == {}

    write_eval(s3_yard, "first", plot)  # machine A
    runs = listed_within(view_on_machine_b, {"first"})
    assert runs.keys() == {"first"}
    page = get(f"{view_on_machine_b}/runs/{runs['first']}").decode()
    assert "files/confusion.png" in page  # the plot, shown from the bucket
    assert get(f"{view_on_machine_b}/runs/{runs['first']}/files/confusion.png") == plot

    write_eval(s3_yard, "second", plot)
    assert listed_within(view_on_machine_b, {"first", "second"}).keys() == {"first", "second"}
