"""The web view refuses every path out of the yard, listens on 127.0.0.1 and writes nothing.

Requests go out through http.client with the path exactly as written: a browser or
urllib would fold ``../`` away before sending it, which would test nothing.
"""

from __future__ import annotations

import hashlib
import http.client

import pytest
from served_yard import RUNS, SECRET, Served


def get(served: Served, path: str, method: str = "GET") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", served.port, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize(
    "tail",
    [
        "../../../secret.txt",
        "%2e%2e/%2e%2e/%2e%2e/secret.txt",
        "%2E%2E%2F%2E%2E%2F%2E%2E%2Fsecret.txt",
        "..%2f..%2f..%2fsecret.txt",
        "%252e%252e/%252e%252e/%252e%252e/secret.txt",
        "/etc/passwd",
        "%2Fetc%2Fpasswd",
        "leak.txt",
        "outside/secret.txt",
    ],
)
def test_a_path_out_of_the_artifact_is_refused(served: Served, tail: str) -> None:
    artifact = served.ids()[RUNS[0][0]]
    status, body = get(served, f"/runs/{artifact}/files/{tail}")
    assert status in (403, 404), (tail, status)
    assert SECRET.encode() not in body and b"root:" not in body


def test_refusals_say_why(served: Served) -> None:
    artifact = served.ids()[RUNS[0][0]]
    status, body = get(served, f"/runs/{artifact}/files/leak.txt")
    assert status == 403
    assert b"error: &#39;leak.txt&#39; leads outside the artifact outputs/bert_lora_a." in body
    status, body = get(served, f"/runs/{artifact}/files/no_such_file.txt")
    assert status == 404 and b"no file &#39;no_such_file.txt&#39; in outputs/bert_lora_a." in body


def test_a_file_of_the_artifact_is_served(served: Served) -> None:
    artifact = served.ids()[RUNS[0][0]]
    status, body = get(served, f"/runs/{artifact}/files/training_log.csv")
    assert status == 200 and body.startswith(b"epoch,step")
    status, body = get(served, f"/runs/{artifact}/files/report/bert_lora_a_training_curves.png")
    assert status == 200 and body.startswith(b"\x89PNG")


def test_an_id_is_looked_up_in_the_index_never_as_a_path(served: Served) -> None:
    for reference in ("..%2F..%2Fsecret.txt", "%2Fetc", "outputs%2Fbert_full"):
        status, _ = get(served, f"/api/runs/{reference}")
        assert status == 404, reference


def test_it_listens_on_loopback_only_by_default(served: Served) -> None:
    """The server was started without --host: its listening socket is 127.0.0.1 (/proc/net/tcp)."""
    listening = []
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and int(port, 16) == served.port:  # 0A: LISTEN
                listening.append(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    assert listening == ["127.0.0.1"]


def test_it_only_reads(served: Served) -> None:
    database = served.yard.state_dir / "index.db"
    before = hashlib.sha256(database.read_bytes()).hexdigest()
    for method in ("POST", "PUT", "DELETE"):
        assert get(served, "/api/runs", method)[0] == 405
    for path in ("/runs", "/api/runs?where=metrics.sst2.accuracy>0.8", f"/runs/{served.ids()['bert_full']}"):
        assert get(served, path)[0] == 200
    assert hashlib.sha256(database.read_bytes()).hexdigest() == before
