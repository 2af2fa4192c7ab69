"""Benchmark: the yard index against scanning manifest files, at 10,000 and 100,000 runs.

Builds a yard of synthetic runs through the library's own writer (``Yard.create``:
claimed folder, temp sibling, manifest, rename, index registration), then times:

* ``runs reindex`` (rebuild the index from the manifests alone);
* a filtered ``runs ls`` (p50 of 20 calls): in-process through the index, against the
  baseline a user would otherwise run in the same process (walk the yard, read every
  ``manifest.json``, filter in Python), and as a real ``tuneyard`` CLI process;
* ``runs aggregate`` (one row per run, every metric and varying config field, as CSV);
* ``runs import`` of 10,000 foreign model folders (config.json + weights each).

Targets (issue 2): filtered ls over 100,000 runs < 50 ms in-process, < 0.5 s as a CLI
process. Prints the figures and appends them to ``bench/RESULTS.md``.

    python bench/yard_index.py                 # 10,000 runs
    python bench/yard_index.py --sizes 10000,100000
    python bench/yard_index.py --sizes "" --import-folders 10000   # import only
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from tuneyard.cli.output import OutputFormat, format_rows
from tuneyard.yard import Manifest, Yard
from tuneyard.yard.summary import aggregate_table

ARCHS = ("bert", "roberta", "modernbert", "gpt2")
METHODS = ("fwsvd", "whiten", "asvd", "adasvd", "standard")
RANKS = (8, 16, 32, 64, 128)
WHERE = "metrics.sst2.accuracy >= 0.95 and rank <= 16 and arch = 'bert'"
SORT = "-metrics.sst2.accuracy"
REPEATS = 20
RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def build_yard(root: Path | str, count: int, seed: int = 0, first: int = 0) -> float:
    """Write ``count`` synthetic runs through ``Yard.create``; returns seconds taken.

    ``root`` is a folder or a yard URL; runs are numbered from ``first``, so a later
    batch added to the same yard gets names of its own.
    """
    rng = random.Random(seed)
    yard = Yard.open(root)
    start = time.perf_counter()
    for number in range(first, first + count):
        arch, method, rank = rng.choice(ARCHS), rng.choice(METHODS), rng.choice(RANKS)
        project, dataset = f"project{number % 10}", rng.choice(("sst2", "mnli", "qnli"))
        manifest = Manifest(
            kind="run",
            name="run",
            arch=arch,
            method=method,
            rank=rank,
            task=dataset,
            dataset=dataset,
            project=project,
            strategy="lowrank",
            config={"lr": rng.choice((1e-4, 3e-5)), "epochs": 3, "seed": number, "lora": {"r": rank}},
            metrics={
                dataset: {"accuracy": round(rng.random(), 4), "f1": round(rng.random(), 4)},
                "train": {"loss": round(rng.uniform(0.1, 2.0), 4)},
            },
        )
        target = yard.target_path(
            "run", project=project, dataset=dataset, name=f"{arch}_{method}_r{rank}_{number}"
        )
        with yard.create(manifest, target) as writer:
            (writer.path / "training_log.csv").write_text("epoch,step,train_loss\n1,10,0.5\n")
        if number > first and number % 10_000 == 0:
            print(f"  ... {number} runs written ({time.perf_counter() - start:.0f} s)", file=sys.stderr)
    return time.perf_counter() - start


def p50(function: Callable[[], object], repeats: int = REPEATS) -> tuple[float, object]:
    """Median seconds of ``repeats`` calls, and the last result."""
    times = []
    result: object = None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def ls_through_index(root: Path) -> str:
    """What ``tuneyard runs ls --where ... --sort ...`` does in-process, up to the printed text."""
    rows = Yard.open(root).query(where=WHERE, sort=SORT)
    columns = [
        "name",
        "kind",
        "arch",
        "method",
        "rank",
        "task",
        "status",
        "created",
        "metrics.sst2.accuracy",
        "path",
    ]
    table = [
        [
            row["name"],
            row["kind"],
            row["arch"],
            row["method"],
            row["rank"],
            row["task"],
            row["status"],
            row["created"],
            row["metrics"].get("sst2.accuracy"),
            row["path"],
        ]
        for row in rows
    ]
    return format_rows(OutputFormat.table, columns, table)


def ls_by_scanning(root: Path) -> list[str]:
    """Baseline: read every manifest.json under the yard and filter in Python."""
    matches = []
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if not name.startswith(".")]
        if "manifest.json" not in files:
            continue
        subfolders[:] = []
        data = json.loads((Path(folder) / "manifest.json").read_text())
        accuracy = data["metrics"].get("sst2", {}).get("accuracy")
        if accuracy is not None and accuracy >= 0.95 and data["rank"] <= 16 and data["arch"] == "bert":
            matches.append((accuracy, data["name"]))
    return [name for _, name in sorted(matches, reverse=True)]


def ls_as_cli_process(root: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "tuneyard",
            "--yard",
            str(root),
            "runs",
            "ls",
            "--where",
            WHERE,
            "--sort",
            SORT,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def aggregate(root: Path) -> int:
    rows = Yard.open(root).query(sort="created", with_manifest=True)
    columns, table = aggregate_table([row["manifest"] for row in rows])
    return len(format_rows(OutputFormat.csv, columns, table))


def measure(count: int, workdir: Path, cli_repeats: int) -> dict[str, float]:
    root = workdir / f"yard-{count}"
    print(f"building a yard of {count} runs in {root} ...", file=sys.stderr)
    figures = {"runs": count, "build_s": build_yard(root, count)}
    yard = Yard.open(root)
    start = time.perf_counter()
    indexed = yard.reindex().indexed
    figures["reindex_s"] = time.perf_counter() - start
    assert indexed == count, (indexed, count)
    figures["ls_index_s"], text = p50(lambda: ls_through_index(root))
    figures["ls_scan_s"], names = p50(lambda: ls_by_scanning(root), repeats=3)
    listed = [line.split()[0] for line in str(text).splitlines()[1:]]
    assert sorted(listed) == sorted(names), "index and scan disagree"  # type: ignore[arg-type]
    figures["ls_rows"] = len(listed)
    figures["ls_cli_s"], _ = p50(lambda: ls_as_cli_process(root), repeats=cli_repeats)
    figures["aggregate_s"], _ = p50(lambda: aggregate(root), repeats=3)
    return figures


def measure_import(workdir: Path, count: int) -> dict[str, float]:
    """Time ``Yard.import_paths`` over ``count`` foreign checkpoint folders outside the yard."""
    foreign = workdir / "old_checkpoints"
    print(f"making {count} foreign model folders in {foreign} ...", file=sys.stderr)
    for number in range(count):
        folder = (
            foreign
            / f"group{number % 100}"
            / f"{ARCHS[number % 4]}_{METHODS[number % 5]}_r{RANKS[number % 5]}_{number}"
        )
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps({"model_type": ARCHS[number % 4]}))
        (folder / "model.safetensors").write_bytes(b"\0" * 1024)
    yard = Yard.open(workdir / "import-yard")
    start = time.perf_counter()
    imported = len(yard.import_paths([foreign]).imported)
    seconds = time.perf_counter() - start
    assert imported == count, (imported, count)
    return {"folders": count, "import_s": seconds}


def report(all_figures: list[dict[str, float]], imports: dict[str, float] | None) -> str:
    header = (
        "| runs | build (writer) | reindex | ls rows | ls in-process (index) "
        "| ls by scanning manifests | speed-up "
        "| ls CLI process | aggregate (CSV) |"
    )
    lines = [
        (
            f"\n## Yard index (bench/yard_index.py) — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, "
            f"{platform.node()}, {os.cpu_count()} CPUs, Python {platform.python_version()}\n"
        ),
        (
            f'Filter: `--where "{WHERE}" --sort {SORT}`. ls: p50 of {REPEATS} calls; '
            "scan baseline and aggregate: "
            "p50 of 3; CLI: a fresh `python -m tuneyard` process.\n"
        ),
        header,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for f in all_figures:
        cells = [
            f"{f['runs']:,}",
            f"{f['build_s']:.1f} s",
            f"{f['reindex_s']:.2f} s",
            f"{f['ls_rows']}",
            f"{f['ls_index_s'] * 1000:.1f} ms",
            f"{f['ls_scan_s'] * 1000:.0f} ms",
            f"{f['ls_scan_s'] / f['ls_index_s']:.0f}x",
            f"{f['ls_cli_s'] * 1000:.0f} ms",
            f"{f['aggregate_s']:.2f} s",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if imports:
        lines.append(
            f"\n`runs import` of {imports['folders']:,} foreign model folders (config.json + weights, "
            f"writes a manifest into each): {imports['import_s']:.1f} s."
        )
    lines.append("\nTargets: ls over 100,000 runs < 50 ms in-process, < 500 ms as a CLI process.\n")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="10000", help="Comma-separated yard sizes (default 10000).")
    parser.add_argument("--import-folders", type=int, default=10_000, help="Folders to import (0: skip).")
    parser.add_argument("--cli-repeats", type=int, default=REPEATS, help="CLI processes to time per size.")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="Where to build the yards (default: a temp dir)."
    )
    parser.add_argument("--keep", action="store_true", help="Keep the yards afterwards.")
    parser.add_argument("--no-results", action="store_true", help="Do not append to bench/RESULTS.md.")
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="tuneyard-bench-"))
    try:
        figures = [measure(int(size), workdir, args.cli_repeats) for size in args.sizes.split(",") if size]
        imports = measure_import(workdir, args.import_folders) if args.import_folders else None
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    text = report(figures, imports)
    print(text)
    if not args.no_results:
        with RESULTS.open("a") as handle:
            handle.write(text)


if __name__ == "__main__":
    main()
