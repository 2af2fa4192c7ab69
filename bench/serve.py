"""Benchmark: ``tuneyard serve``'s runs page over a yard index of 10,000 runs.

Builds an index of synthetic runs (manifest records straight into ``Index.rebuild``:
the runs page reads only the index, so no folders are needed), starts ``tuneyard
serve`` as a real process on 127.0.0.1 and times, in paired rounds:

* baseline: the same query through the library in this process, ``Yard.query`` (what
  ``runs ls --limit 200`` runs), no HTTP and no HTML;
* the runs page: ``GET /runs?...`` answered by the server (HTTP on loopback, one
  kept-alive connection; the time includes the request and reading the whole page,
  so it bounds the server-side time from above);
* the JSON API, ``GET /api/runs?...`` with the same query.

For three queries: the default page (newest 200 of all runs), a filter with a metric
sort, and all runs sorted by a metric. Target (issue 29): the runs page < 300 ms.

    python bench/serve.py                    # 10,000 runs, 15 rounds
    python bench/serve.py --runs 10000 --rounds 15 --no-record
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from results import record  # noqa: E402

from tuneyard.yard import Manifest, Yard  # noqa: E402

ARCHS = ("bert", "roberta", "modernbert", "gpt2")
METHODS = ("fwsvd", "whiten", "asvd", "adasvd", "standard")
RANKS = (8, 16, 32, 64, 128)
LIMIT = 200
QUERIES: dict[str, dict[str, str]] = {
    "default page": {},
    "filter + metric sort": {
        "where": "metrics.sst2.accuracy >= 0.5 and rank <= 32 and arch = 'bert'",
        "sort": "-metrics.sst2.accuracy",
    },
    "all, metric sort": {"sort": "-metrics.sst2.f1"},
}


def build_index(root: Path, count: int, seed: int = 0) -> None:
    """``count`` run manifests, indexed in one transaction (as ``runs reindex`` would)."""
    rng = random.Random(seed)
    records = []
    for number in range(count):
        arch, method, rank = rng.choice(ARCHS), rng.choice(METHODS), rng.choice(RANKS)
        dataset = rng.choice(("sst2", "mnli", "qnli"))
        manifest = Manifest(
            kind="run", name=f"{arch}_{method}_r{rank}_{number}", arch=arch, method=method, rank=rank,
            task=dataset, dataset=dataset, project=f"project{number % 10}", strategy="lowrank",
            config={"lr": rng.choice((1e-4, 3e-5)), "epochs": 3, "seed": number},
            metrics={
                "sst2": {"accuracy": round(rng.random(), 4), "f1": round(rng.random(), 4)},
                "train": {"loss": round(rng.uniform(0.1, 2.0), 4)},
            },
            path=f"outputs/project{number % 10}/run_{number}",
        )  # fmt: skip
        records.append(manifest.to_data())
    Yard.open(root).index.rebuild(records)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server(root: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tuneyard", "--yard", str(root), "serve", "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("tuneyard serve did not start")


def timed(function: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def fetch(connection: http.client.HTTPConnection, path: str) -> bytes:
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    if response.status != 200:
        raise SystemExit(f"GET {path}: {response.status} {body[:300]!r}")
    return body


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3g} ({min(values):.3g}..{max(values):.3g})"


def measure(root: Path, port: int, rounds: int) -> list[dict[str, object]]:
    """Paired rounds per query; the order of baseline and page alternates between rounds."""
    yard = Yard.open(root)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    results = []
    for label, params in QUERIES.items():
        query = urllib.parse.urlencode(params)
        page_path, api_path = f"/runs?{query}", f"/api/runs?{query}&limit={LIMIT}"

        def baseline(params: dict[str, str] = params) -> list[dict[str, object]]:
            return yard.query(where=params.get("where"), sort=params.get("sort"), limit=LIMIT + 1)

        fetch(connection, page_path)  # warm: the first request imports the templates
        base_s, page_s, api_s = [], [], []
        rows = 0
        for number in range(rounds):
            order = ("base", "page", "api") if number % 2 == 0 else ("api", "page", "base")
            for step in order:
                if step == "base":
                    seconds, found = timed(baseline)
                    base_s.append(seconds)
                    rows = min(len(found), LIMIT)  # type: ignore[arg-type]
                elif step == "page":
                    seconds, body = timed(lambda: fetch(connection, page_path))
                    page_s.append(seconds)
                    assert body.count(b'type="checkbox"') == rows, "the page shows another number of rows"
                else:
                    api_s.append(timed(lambda: fetch(connection, api_path))[0])
        results.append({
            "query": label, "params": params, "rows": rows, "base": base_s, "page": page_s, "api": api_s,
            "ratio": [page / base for page, base in zip(page_s, base_s)],
        })  # fmt: skip
    return results


def report(results: list[dict[str, object]], count: int, rounds: int, shared: str) -> str:
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"### {when}, {platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}{shared}",
        "",
        f"{count:,} runs in the index; {rounds} paired rounds per query (baseline, page, API; order "
        f"alternating); page and API times are HTTP round trips on 127.0.0.1 to a `tuneyard serve` process "
        f"(page: {LIMIT} rows shown). Times in ms: median (min..max).",
        "",
        "| query | rows | baseline `Yard.query` | runs page (HTML) | page / baseline | JSON API |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for result in results:
        ms = {key: [value * 1000 for value in result[key]] for key in ("base", "page", "api")}  # type: ignore[attr-defined]
        lines.append(
            f"| {result['query']} | {result['rows']} | {spread(ms['base'])} | {spread(ms['page'])} | "
            f"{spread(result['ratio'])}x | {spread(ms['api'])} |"  # type: ignore[arg-type]
        )
    worst = max(max(result["page"]) for result in results) * 1000  # type: ignore[type-var]
    medians = max(statistics.median(result["page"]) for result in results) * 1000  # type: ignore[arg-type]
    verdict = "met" if medians < 300 else "MISSED"
    lines += ["", f"Target: the runs page < 300 ms: **{verdict}** (worst median {medians:.0f} ms, "
              f"slowest single request {worst:.0f} ms)."]  # fmt: skip
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--shared", default="", help="Say the machine was shared, e.g. 'load average 3'.")
    parser.add_argument("--no-record", action="store_true", help="Print only; leave RESULTS.md alone.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        root = Path(workdir) / "yard"
        root.mkdir()
        print(f"indexing {args.runs:,} runs ...", file=sys.stderr)
        build_index(root, args.runs)
        port = free_port()
        process = start_server(root, port)
        try:
            results = measure(root, port, args.rounds)
        finally:
            process.terminate()
            process.wait()
    load = os.getloadavg()[0]
    shared = f", {args.shared}" if args.shared else f", load average {load:.1f}"
    text = report(results, args.runs, args.rounds, shared)
    print(text)
    if not args.no_record:
        record("Web view (bench/serve.py)", text)


if __name__ == "__main__":
    main()
