"""Benchmark: ``tuneyard label`` against a plain asyncio ``openai`` loop, same server, same concurrency.

The server is the label tests' fault-injecting one with no faults and ``--delay``
seconds per reply (a teacher's latency: the job is bound by waiting, as a real one is),
run on 127.0.0.1 as ``--server-workers`` processes serving one socket, so that it is
not what limits the clients. The baseline is what a competent user writes: an
``AsyncOpenAI`` client, a semaphore of ``--concurrency``, ``asyncio.gather`` over the
rows, the answers written to a JSON-lines file at the end. tuneyard's side is the whole
job in this process (``label_dataset``): reading the rows, the journal line per row,
the Parquet files, the cost log and the card.

The server's bound is measured beside them, as a third side of every round: the same
requests at the same concurrency from a client that costs next to nothing (raw HTTP/1.1
over keep-alive connections, the request bytes built beforehand), i.e. the rows/s the
server can serve at this concurrency; the latency bound, ``concurrency / delay``, is
printed too. A side close to the measured bound would be measuring the server, and the
report says so.

``--warmup`` untimed rounds (imports, connections), then ``--rounds`` rounds, the order
of the three reversed every other round (``bench/pairs.py``). Reported: the paired ratio
tuneyard / plain rows/s (goal >= 0.9), median and range, and each side's rows/s beside
the server's bound. Prints the command and the lines for ``bench/RESULTS.md``
(``## label``), and appends them there unless ``--no-append``.

    python bench/label.py   # 400 rows, concurrency 8, 20 ms replies, 4 server processes, 1 + 5 rounds: 1 min
    python bench/label.py --rows 40 --rounds 2 --no-append   # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from pairs import quiet_libraries, ratios, rotate, spread  # bench/: python bench/x.py puts it on sys.path
from results import command_line, record

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "label"))
from label_rows import PROMPT, write_rows  # noqa: E402 - the tests' rows and prompt

CHOICES = ["alpha", "beta", "gamma"]


def start_server(log: Path, delay: float, workers: int) -> tuple[subprocess.Popen, str]:
    server = REPO / "tests" / "label" / "fault_server.py"
    process = subprocess.Popen(
        [sys.executable, str(server), "--log", str(log), "--delay", str(delay), "--workers", str(workers)],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = process.stdout.readline().split()[1] if process.stdout else ""
    return process, f"http://127.0.0.1:{port}/v1"


def ask(row: dict) -> dict:
    """The chat request for ``row``, as both clients send it."""
    prompt = PROMPT.replace("{{ id }}", str(row["id"])).replace("{{ text }}", row["text"])
    return {
        "model": "teacher", "messages": [{"role": "user", "content": prompt}], "max_tokens": 64,
        "temperature": 0, "logprobs": True, "top_logprobs": 1,
    }  # fmt: skip


async def plain_loop(url: str, rows: list[dict], concurrency: int, output: Path) -> None:
    """The baseline: one AsyncOpenAI client, a semaphore, gather, a JSON-lines file."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key="none")
    semaphore = asyncio.Semaphore(concurrency)

    async def label(row: dict) -> dict:
        async with semaphore:
            reply = await client.chat.completions.create(**ask(row))
            answer = (reply.choices[0].message.content or "").strip()
            return {"id": row["id"], "answer": answer, "valid": answer in CHOICES}

    results = await asyncio.gather(*(label(row) for row in rows))
    await client.close()
    output.write_text("".join(json.dumps(result) + "\n" for result in results))


async def raw_requests(url: str, requests: list[bytes], concurrency: int) -> None:
    """Send ``requests`` over ``concurrency`` keep-alive connections, each reply read whole."""
    address = urlsplit(url)
    pending = iter(requests)

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(address.hostname, address.port)
        for request in pending:  # shared: each connection takes the next request when free
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            fields = dict(line.split(b":", 1) for line in head.split(b"\r\n")[1:] if b":" in line)
            length = int({name.lower(): value for name, value in fields.items()}[b"content-length"])
            await reader.readexactly(length)
        writer.close()
        await writer.wait_closed()

    await asyncio.gather(*(connection() for _ in range(concurrency)))


def run_server_bound(url: str, data: Path, concurrency: int) -> float:
    """Rows/s the server serves the same requests at the same concurrency to a nearly free client."""
    address = urlsplit(url)
    requests = []
    for line in (data / "train.jsonl").read_text().splitlines():
        body = json.dumps(ask(json.loads(line))).encode()
        requests.append(
            f"POST {address.path}/chat/completions HTTP/1.1\r\nHost: {address.netloc}\r\n"
            f"Content-Type: application/json\r\nAuthorization: Bearer none\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
    started = time.perf_counter()
    asyncio.run(raw_requests(url, requests, concurrency))
    return len(requests) / (time.perf_counter() - started)


def run_plain(url: str, data: Path, concurrency: int, scratch: Path) -> float:
    rows = [json.loads(line) for line in (data / "train.jsonl").read_text().splitlines()]
    started = time.perf_counter()
    asyncio.run(plain_loop(url, rows, concurrency, scratch / "plain.jsonl"))
    return len(rows) / (time.perf_counter() - started)


def run_tuneyard(url: str, data: Path, concurrency: int, yard_dir: Path, rows: int) -> float:
    from tuneyard.label.labeller import label_dataset
    from tuneyard.label.options import LabelOptions
    from tuneyard.yard.root import Yard

    options = LabelOptions(
        data=str(data), teacher="teacher", base_url=url, prompt=PROMPT, answer={"choices": CHOICES},
        no_api_key=True, concurrency=concurrency,
    )  # fmt: skip
    started = time.perf_counter()
    result = label_dataset(options, Yard.open(yard_dir))
    seconds = time.perf_counter() - started
    assert result.tally.labelled == rows, result.tally
    return rows / seconds


def sides(url: str, data: Path, args: argparse.Namespace, scratch: Path) -> dict[str, Callable[[int], float]]:
    """The plain loop, tuneyard's job (a fresh yard per round) and the server's bound; rows/s each."""
    return {
        "plain": lambda _: run_plain(url, data, args.concurrency, scratch),
        "tuneyard": lambda n: run_tuneyard(url, data, args.concurrency, scratch / f"yard{n}", args.rows),
        "server": lambda _: run_server_bound(url, data, args.concurrency),
    }


def print_round(round_number: int, rates: dict[str, float]) -> None:
    if round_number >= 0:
        print(
            f"round {round_number + 1}: plain {rates['plain']:.1f} rows/s, tuneyard {rates['tuneyard']:.1f} "
            f"rows/s, server bound {rates['server']:.1f} rows/s",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds per reply")
    parser.add_argument("--server-workers", type=int, default=4, help="server processes")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (every side once per round)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds of every side first")
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()
    quiet_libraries()
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        data = write_rows(scratch / "rows", args.rows)
        server, url = start_server(scratch / "server.jsonl", args.delay, args.server_workers)
        try:
            rates = rotate(sides(url, data, args, scratch), args.rounds, args.warmup, print_round)
        finally:
            server.kill()
            server.wait()
    bound = statistics.median(rates["server"])
    fastest = max(statistics.median(rates["plain"]), statistics.median(rates["tuneyard"]))
    overhead = ratios(rates["tuneyard"], rates["plain"])
    lines = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; `{command_line('label.py', args)}`",
        "",
        f"- rows/s, tuneyard label / plain asyncio openai loop, paired over {args.rounds} rounds: "
        f"**{spread(overhead)}** (medians {statistics.median(rates['tuneyard']):.1f} vs "
        f"{statistics.median(rates['plain']):.1f}; goal >= 0.9: "
        f"{'met' if statistics.median(overhead) >= 0.9 else 'not met'})",
        f"- the server's bound, the same requests from a raw keep-alive HTTP client at concurrency "
        f"{args.concurrency} ({args.server_workers} server processes): {spread(rates['server'], 1)} rows/s "
        f"(latency bound {args.concurrency} / {args.delay:g} s = {args.concurrency / args.delay:.0f} "
        f"rows/s); plain / bound {spread(ratios(rates['plain'], rates['server']))}, tuneyard / bound "
        f"{spread(ratios(rates['tuneyard'], rates['server']))}",
    ]
    if fastest > 0.8 * bound:
        lines.append(
            "- warning: a side reached over 80% of the server's bound, so the ratio measures the server "
            "as much as the clients (more --server-workers, or more cores)"
        )
    print("\n".join(lines))
    if not args.no_append:
        record("label", "\n".join(lines))


if __name__ == "__main__":
    main()
