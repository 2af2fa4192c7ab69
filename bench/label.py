"""Benchmark: ``tuneyard label`` against a plain asyncio ``openai`` loop, same server, same concurrency.

The server is the label tests' fault-injecting one with no faults and ``--delay``
seconds per reply (a teacher's latency: the job is bound by waiting, as a real one is),
run as its own process on 127.0.0.1. The baseline is what a competent user writes: an
``AsyncOpenAI`` client, a semaphore of ``--concurrency``, ``asyncio.gather`` over the
rows, the answers written to a JSON-lines file at the end. tuneyard's side is the whole
job in this process (``label_dataset``): reading the rows, the journal line per row,
the Parquet files, the cost log and the card. ``--rounds`` rounds, who goes first
alternating; reported: rows/s of each and the paired ratio tuneyard / plain (goal >= 0.9).

    python bench/label.py                       # 400 rows, concurrency 8, 20 ms replies, 5 rounds
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
from datetime import UTC, datetime
from pathlib import Path

from pairs import quiet_libraries, spread  # bench/: python bench/x.py puts it on sys.path
from results import record

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "label"))
from label_rows import PROMPT, write_rows  # noqa: E402 - the tests' rows and prompt

CHOICES = ["alpha", "beta", "gamma"]


def start_server(log: Path, delay: float) -> tuple[subprocess.Popen, str]:
    server = REPO / "tests" / "label" / "fault_server.py"
    process = subprocess.Popen(
        [sys.executable, str(server), "--log", str(log), "--delay", str(delay)],
        stdout=subprocess.PIPE,
        text=True,
    )
    port = process.stdout.readline().split()[1] if process.stdout else ""
    return process, f"http://127.0.0.1:{port}/v1"


async def plain_loop(url: str, rows: list[dict], concurrency: int, output: Path) -> None:
    """The baseline: one AsyncOpenAI client, a semaphore, gather, a JSON-lines file."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=url, api_key="none")
    semaphore = asyncio.Semaphore(concurrency)

    async def ask(row: dict) -> dict:
        async with semaphore:
            prompt = PROMPT.replace("{{ id }}", str(row["id"])).replace("{{ text }}", row["text"])
            reply = await client.chat.completions.create(
                model="teacher", messages=[{"role": "user", "content": prompt}], max_tokens=64, temperature=0,
                logprobs=True, top_logprobs=1,
            )  # fmt: skip
            answer = (reply.choices[0].message.content or "").strip()
            return {"id": row["id"], "answer": answer, "valid": answer in CHOICES}

    results = await asyncio.gather(*(ask(row) for row in rows))
    await client.close()
    output.write_text("".join(json.dumps(result) + "\n" for result in results))


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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.02, help="seconds per reply")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()
    quiet_libraries()
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        data = write_rows(scratch / "rows", args.rows)
        server, url = start_server(scratch / "server.jsonl", args.delay)
        try:
            run_plain(url, data, args.concurrency, scratch)  # warm-up, both sides: imports, connections
            run_tuneyard(url, data, args.concurrency, scratch / "warm-up", args.rows)
            rates: dict[str, list[float]] = {"plain": [], "tuneyard": []}
            for number in range(args.rounds):
                sides = ["plain", "tuneyard"] if number % 2 == 0 else ["tuneyard", "plain"]
                for side in sides:
                    if side == "plain":
                        rates[side].append(run_plain(url, data, args.concurrency, scratch))
                    else:
                        yard = scratch / f"yard{number}"
                        rates[side].append(run_tuneyard(url, data, args.concurrency, yard, args.rows))
                print(f"round {number + 1}: plain {rates['plain'][-1]:.1f} rows/s, "
                      f"tuneyard {rates['tuneyard'][-1]:.1f} rows/s", flush=True)  # fmt: skip
        finally:
            server.kill()
    ratios = [tuned / plain for plain, tuned in zip(rates["plain"], rates["tuneyard"], strict=True)]
    lines = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.1f}; `python bench/label.py --rows {args.rows} "
        f"--concurrency {args.concurrency} --delay {args.delay} --rounds {args.rounds}`",
        "",
        f"- rows/s, tuneyard label / plain asyncio openai loop, paired over {args.rounds} rounds: "
        f"**{spread(ratios)}** (medians {statistics.median(rates['tuneyard']):.1f} vs "
        f"{statistics.median(rates['plain']):.1f}; goal >= 0.9: "
        f"{'met' if statistics.median(ratios) >= 0.9 else 'not met'})",
    ]
    print("\n".join(lines))
    if not args.no_append:
        record("label", "\n".join(lines))


if __name__ == "__main__":
    main()
