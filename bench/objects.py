"""Benchmark: what the shared-object store costs a fine-tune, and ``runs du`` / ``runs gc`` at scale.

Issue 27's bench line. Two parts, one process:

1. **finetune, store on vs off.** ``bench/finetune.py``'s tuneyard side (the real
   all-MiniLM-L6-v2, the first 512 rows of ``data/debian_topics``, full fine-tuning, one
   epoch, its defaults; timed from options to a completed run) run alternately with the
   store on (the default) and off (``TUNEYARD_SHARED_OBJECTS=off``), each in a fresh
   yard, ``--rounds`` paired rounds (ABBA) after ``--warmup`` untimed ones. Headline:
   on / off time, median of the per-round ratios with their range; target (issue 27):
   overhead <= 2%. The rounds of a fine-tune scatter by several percent either way, more
   than the store can cost, so the bench also times the store's own code inside every
   run (:class:`StoreClock`: ``share_folder`` at each publish, ``releasing`` around each
   deletion, both sides of its ``yield``): its seconds as a share of the same run's, per
   "on" round, median and range, with the "off" rounds' (the no-op calls) beside it.
   That share is an upper bound: a publish's hash is cached per file and the manifest
   reuses it, where with the store off the manifest hashes the same files itself. After
   each "on" round the bench counts the weight files the store linked and the objects it
   holds (each distinct content hashed once); after each "off" round it checks the
   store is empty.
2. **``runs du`` and ``runs gc`` over ``--artifacts`` artifacts** (10,000), written
   through the library's writer (``Yard.create``; not timed): each holds a manifest, a
   ``config.json`` and a ``model.safetensors`` of ``MIN_SHARED_BYTES`` (1 MiB, the
   smallest the store takes; opaque bytes, the store never parses them). Sharing:
   ``--contents`` distinct weight contents (400), each held by consecutive artifacts
   (25 each at the defaults: a run's checkpoints, best/, last/ and the merges and
   exports made from it). Timed, median of ``--repeats``, each next to what a user
   would run on the same tree:

   - ``tuneyard runs du`` as a CLI process, and ``yard_usage`` in-process; against
     GNU ``du -s`` (on-disk, each inode once) and ``du -sl --apparent-size`` (logical);
   - ``tuneyard runs gc`` after the first ``--removed`` artifacts (1,000) were deleted
     by hand (``rm -rf``: 40 contents lose their last artifact; gc also drops their
     stale index entries), against ``find .tuneyard/objects -mindepth 2 -type f -links 1
     -delete``; what each removed is put back before the next (not timed);
   - ``tuneyard runs gc`` with nothing left to do, against the same ``find``.

Prints the figures and appends them to ``bench/RESULTS.md`` (section ``## Shared bytes
(bench/objects.py)``) unless ``--no-append``.

    python bench/objects.py   # 1 warm-up + 5 rounds, 10,000 artifacts: 8 to 11 min on 2 quiet cores
    python bench/objects.py --rows 16 --eval-rows 8 --rounds 1 --artifacts 200 --contents 20 \\
        --removed 20 --repeats 1 --no-append   # smoke run, about 2 min
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# bench/: python bench/x.py puts it on sys.path
from finetune import add_training_flags, default_model, subset
from pairs import Run, quiet_libraries, ratios, rotate, spread, tuneyard_run
from results import command_line, record

from tuneyard.yard import Manifest, Yard
from tuneyard.yard import objects as store_module
from tuneyard.yard.gc import INDEX_REASON, OBJECT_REASON
from tuneyard.yard.objects import (
    MIN_SHARED_BYTES,
    OBJECTS_FOLDER,
    READ_ONLY,
    SHARING_ENV,
    objects,
    weight_files,
    yard_usage,
)
from tuneyard.yard.root import INDEX_FILE, STATE_DIR

TARGET = 1.02
MIB = 1 << 20
SETTINGS = ("on", "off")


class StoreClock:
    """Wall seconds spent in the store's code during a run: every publish's and deletion's part.

    Wraps :func:`~tuneyard.yard.objects.share_folder` and
    :func:`~tuneyard.yard.objects.releasing` in their module, which
    :class:`~tuneyard.yard.storage.LocalStorage` imports at each call, so every store
    call of the run is counted and nothing else: the deletion between ``releasing``'s
    two halves is not.
    """

    def __init__(self) -> None:
        self.seconds = 0.0

    @contextlib.contextmanager
    def counting(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - started

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """The store's two entry points timed while the block runs, restored after."""
        share_folder, releasing = store_module.share_folder, store_module.releasing

        def timed_share_folder(staged: Path, target: Path) -> None:
            with self.counting():
                share_folder(staged, target)

        @contextlib.contextmanager
        def timed_releasing(path: Path) -> Iterator[None]:
            context = releasing(path)
            with self.counting():
                context.__enter__()
            try:
                yield
            finally:
                with self.counting():
                    context.__exit__(*sys.exc_info())

        store_module.share_folder, store_module.releasing = timed_share_folder, timed_releasing
        try:
            yield
        finally:
            store_module.share_folder, store_module.releasing = share_folder, releasing


@dataclass(frozen=True)
class StoreWork:
    """What the store did in one run: weight files linked (by name), and the objects it holds."""

    names: Counter[str]
    linked: int
    objects: int
    stored: int


def store_work(root: Path) -> StoreWork:
    """Count the finished yard's weight files (each linked as it was published) and its objects."""
    files = list(weight_files(root))  # the objects themselves have no suffix: not counted
    stored = [obj.stat().st_size for obj in objects(root / STATE_DIR / OBJECTS_FOLDER)]
    return StoreWork(
        Counter(path.name for path in files),
        sum(path.stat().st_size for path in files),
        len(stored),
        sum(stored),
    )


@dataclass(frozen=True)
class TimedRun:
    """One fine-tune of part 1: the run end to end, and the store's share of it (:class:`StoreClock`)."""

    run: Run
    store_seconds: float

    @property
    def seconds(self) -> float:
        return self.run.seconds

    @property
    def store_share(self) -> float:
        return self.store_seconds / self.run.seconds


def finetune_on_off(
    args: argparse.Namespace, scratch: Path
) -> tuple[dict[str, list[TimedRun]], list[StoreWork]]:
    """Part 1: the same fine-tune with the store on and off, paired rounds; and what the store did."""
    model_dir = args.model or default_model()
    data_dir = subset(args.data, args.rows, args.eval_rows, scratch / "data")
    work: list[StoreWork] = []

    def side(setting: str) -> Callable[[int], TimedRun]:
        def run(round_number: int) -> TimedRun:
            os.environ[SHARING_ENV] = setting
            clock = StoreClock()
            try:
                with clock.installed():
                    timed = tuneyard_run(
                        model_dir, data_dir, scratch / f"{setting}{round_number}", args, strategy="full"
                    )
                return TimedRun(timed, clock.seconds)
            finally:
                del os.environ[SHARING_ENV]

        return run

    def after_round(round_number: int, outcomes: dict[str, TimedRun]) -> None:
        on, off = scratch / f"on{round_number}", scratch / f"off{round_number}"
        if any(objects(off / STATE_DIR / OBJECTS_FOLDER)):
            raise RuntimeError(f"{SHARING_ENV}=off was not honoured: {off} has shared objects")
        if round_number >= 0:
            work.append(store_work(on))
            on, off = outcomes["on"], outcomes["off"]
            print(
                f"round {round_number + 1}: on {on.seconds:.2f} s (store {on.store_seconds:.3f} s), "
                f"off {off.seconds:.2f} s (store {off.store_seconds:.3f} s), "
                f"ratio {on.seconds / off.seconds:.3f}",
                flush=True,
            )
        for folder in (on, off):  # checkpoints add up to gigabytes over the rounds
            shutil.rmtree(folder, ignore_errors=True)

    runs = rotate({setting: side(setting) for setting in SETTINGS}, args.rounds, args.warmup, after_round)
    return runs, work


def finetune_block(runs: dict[str, list[TimedRun]], work: list[StoreWork]) -> str:
    """Part 1's table and summary lines."""
    on, off = [run.seconds for run in runs["on"]], [run.seconds for run in runs["off"]]
    paired = ratios(on, off)
    shares = [run.store_share for run in runs["on"]]
    table = (
        "| round | first | store on s | store off s | on / off | store's code in the on run s | share |\n"
        "|---|---|---|---|---|---|---|\n"
    ) + "".join(
        f"| {i + 1} | {SETTINGS[i % 2]} | {on[i]:.2f} | {off[i]:.2f} | {paired[i]:.3f} "
        f"| {runs['on'][i].store_seconds:.3f} | {100 * shares[i]:.2f}% |\n"
        for i in range(len(paired))
    )
    median, share = statistics.median(paired), statistics.median(shares)
    off_store = max(run.store_seconds for run in runs["off"])
    last = work[-1]
    return (
        f"{table}\n"
        f"- end-to-end, store on / off, paired over {len(paired)} rounds: **{spread(paired)}**, "
        f"median overhead {100 * (median - 1):.1f}% "
        f"(target <= {100 * (TARGET - 1):.0f}%: {'met' if median <= TARGET else 'not met'}); "
        f"medians: on {statistics.median(on):.2f} s, off {statistics.median(off):.2f} s\n"
        f"- the store's own code timed inside each on run (every `share_folder` and `releasing`), "
        f"as a share of that run: **{100 * share:.2f}% "
        f"({100 * min(shares):.2f}%..{100 * max(shares):.2f}%)**, "
        f"{statistics.median(run.store_seconds for run in runs['on']):.3f} s median "
        f"(target <= {100 * (TARGET - 1):.0f}%: {'met' if max(shares) <= TARGET - 1 else 'not met'} "
        f"in every round); the same calls in the off runs (no-ops): at most {off_store:.4f} s\n"
        f'- what the store did in an "on" run (the last): linked {last.names.total()} weight files '
        f"({', '.join(f'{name} x{count}' for name, count in sorted(last.names.items()))}; "
        f"{last.linked / MIB:,.1f} MiB) to {last.objects} objects ({last.stored / MIB:,.1f} MiB), "
        "each content hashed once (sha256 is cached per file, and best/ and last/ are links to "
        'the checkpoint\'s files); "off" runs: no objects, checked each round\n'
    )


def weights(content: int) -> bytes:
    """Distinct bytes for each content number, the smallest size the store takes."""
    return content.to_bytes(8, "big") * (MIN_SHARED_BYTES // 8)


def write_artifacts(root: Path, numbers: range, artifacts: int, contents: int) -> None:
    """Write the artifacts ``numbers`` through ``Yard.create``, consecutive ones sharing a weight content.

    Left for ``runs reindex`` to index: several processes write at once (:func:`build_yard`).
    """
    yard = Yard.open(root, index_writes=False)
    per_content = max(1, artifacts // contents)
    for number in numbers:
        manifest = Manifest(
            kind="run",
            name=f"run_{number}",
            project=f"project{number // 1000}",
            dataset="data",
            status="complete",
        )
        target = yard.target_path("run", project=manifest.project, dataset="data", name=manifest.name)
        with yard.create(manifest, target) as writer:
            (writer.path / "config.json").write_text('{"model_type": "bert"}\n')
            (writer.path / "model.safetensors").write_bytes(weights(number // per_content % contents))


def build_yard(root: Path, artifacts: int, contents: int, jobs: int) -> float:
    """Write the yard with ``jobs`` processes (the writer's fsyncs wait on the disk, not the CPU), index it.

    Returns the seconds taken.
    """
    started = time.perf_counter()
    (root / STATE_DIR).mkdir(parents=True)  # the yard, so the writers' publishes find its store
    spawn = multiprocessing.get_context("spawn")  # no fork of a process that has run torch
    with ProcessPoolExecutor(jobs, mp_context=spawn) as pool:
        slices = [range(job, artifacts, jobs) for job in range(jobs)]
        list(pool.map(write_artifacts, [root] * jobs, slices, [artifacts] * jobs, [contents] * jobs))
    Yard.open(root).reindex()
    return time.perf_counter() - started


def median_seconds(command: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        command()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run(*words: str | Path) -> str:
    """A real process to the end; its stdout."""
    return subprocess.run([str(word) for word in words], check=True, capture_output=True, text=True).stdout


def tuneyard(root: Path, *words: str) -> str:
    """``tuneyard --yard ROOT WORDS`` as a fresh CLI process."""
    return run(sys.executable, "-m", "tuneyard", "--yard", root, *words)


def delete_unlinked_objects(root: Path) -> str:
    """The reference gc: what a user runs by hand on the store (objects sit two levels down)."""
    store = root / STATE_DIR / OBJECTS_FOLDER
    return run("find", store, "-mindepth", "2", "-type", "f", "-links", "1", "-delete")


def keeper_of_gc_work(root: Path, spare: Path) -> Callable[[], None]:
    """Save what a gc of ``root`` removes now; returns what puts it back (between timed gcs).

    That is the unreferenced objects (copied aside, not linked: a link would reference
    them) and the index with its stale rows (SQLite's backup, WAL or not). Far cheaper
    than a fresh copy of a 10,000-artifact yard for every repeat.
    """
    store, index = root / STATE_DIR / OBJECTS_FOLDER, root / STATE_DIR / INDEX_FILE
    unreferenced = [obj for obj in objects(store) if obj.stat().st_nlink == 1]
    spare.mkdir()
    for obj in unreferenced:
        shutil.copyfile(obj, spare / obj.name)
    copy_database(index, spare / INDEX_FILE)

    def put_back() -> None:
        for obj in unreferenced:
            if not obj.exists():
                obj.parent.mkdir(exist_ok=True)
                shutil.copyfile(spare / obj.name, obj)
                obj.chmod(READ_ONLY)
        copy_database(spare / INDEX_FILE, index)

    return put_back


def copy_database(source: Path, target: Path) -> None:
    """``source``'s SQLite database, whole, into ``target``."""
    with (
        contextlib.closing(sqlite3.connect(source)) as reader,
        contextlib.closing(sqlite3.connect(target)) as writer,
    ):
        reader.backup(writer)


def timed_with_put_back(
    root: Path, commands: dict[str, Callable[[Path], object]], put_back: Callable[[], None], repeats: int
) -> dict[str, float]:
    """Median seconds of each command on ``root``, its work put back after each (not timed).

    The order alternates each repeat.
    """
    times: dict[str, list[float]] = {name: [] for name in commands}
    order = list(commands)
    for repeat in range(repeats):
        for name in order if repeat % 2 == 0 else order[::-1]:
            started = time.perf_counter()
            commands[name](root)
            times[name].append(time.perf_counter() - started)
            put_back()
    return {name: statistics.median(values) for name, values in times.items()}


def object_count(root: Path) -> int:
    return sum(1 for _ in objects(root / STATE_DIR / OBJECTS_FOLDER))


def du_and_gc(args: argparse.Namespace, scratch: Path) -> str:
    """Part 2: build the yard, time ``runs du`` and ``runs gc`` next to their references; the record."""
    root = scratch / "yard"
    print(f"building a yard of {args.artifacts} artifacts in {root} ...", file=sys.stderr)
    build_s = build_yard(root, args.artifacts, args.contents, args.build_jobs)
    usage = yard_usage(Yard.open(root))
    assert len(usage.artifacts) == args.artifacts and object_count(root) == args.contents
    du_cli = median_seconds(lambda: tuneyard(root, "runs", "du"), args.repeats)
    du_in_process = median_seconds(lambda: yard_usage(Yard.open(root)), args.repeats)
    du_disk = median_seconds(lambda: run("du", "-s", root), args.repeats)
    du_apparent = median_seconds(lambda: run("du", "-sl", "--apparent-size", root), args.repeats)
    gnu_disk = int(run("du", "-s", "-B1", root).split()[0])
    gnu_logical = int(run("du", "-sl", "--apparent-size", "-B1", root).split()[0])

    per_content = max(1, args.artifacts // args.contents)
    yard = Yard.open(root)
    for number in range(args.removed):  # deleted by hand, as a user does: rm -rf
        shutil.rmtree(root / yard.find(f"run_{number}")["path"])
    orphans = len(
        {number // per_content % args.contents for number in range(args.removed)}
        - {number // per_content % args.contents for number in range(args.removed, args.artifacts)}
    )
    put_back = keeper_of_gc_work(root, scratch / "gc-work")
    gc_busy = timed_with_put_back(
        root,
        {"tuneyard runs gc": lambda yard: tuneyard(yard, "runs", "gc"), "find": delete_unlinked_objects},
        put_back,
        args.repeats,
    )
    said = tuneyard(root, "runs", "gc")
    assert said.count(OBJECT_REASON) == orphans and object_count(root) == args.contents - orphans, said
    assert said.count(INDEX_REASON) == args.removed, said  # the put-back index held its stale rows again
    gc_idle = median_seconds(lambda: tuneyard(root, "runs", "gc"), args.repeats)
    find_idle = median_seconds(lambda: delete_unlinked_objects(root), args.repeats)
    return (
        f"{args.artifacts:,} artifacts written through `Yard.create` by {args.build_jobs} processes, then "
        f"`runs reindex`, in {build_s:.0f} s (not timed below), "
        f"each a manifest, a config.json and a 1 MiB model.safetensors; {args.contents} distinct "
        f"weight contents, {per_content} consecutive artifacts each. "
        f"`runs du`: logical {usage.logical / MIB:,.0f} MiB, stored {usage.stored / MIB:,.0f} MiB; "
        f"GNU du: {gnu_disk / MIB:,.0f} MiB on disk, {gnu_logical / MIB:,.0f} MiB apparent "
        f"counting every link. Median of {args.repeats} (gc with work: what it removed put back "
        "after each, not timed: the objects from copies aside, the index from a backup; order "
        "alternated).\n\n"
        "| what | tuneyard | reference a user runs | reference |\n|---|---|---|---|\n"
        f"| `runs du` (CLI process) | {du_cli:.2f} s | `du -s` | {du_disk:.2f} s |\n"
        f"| `runs du` in-process (`yard_usage`) | {du_in_process:.2f} s | `du -sl --apparent-size` "
        f"| {du_apparent:.2f} s |\n"
        f"| `runs gc` after `rm -rf` of {args.removed:,} artifacts ({orphans} objects and "
        f"{args.removed:,} index entries to remove) | {gc_busy['tuneyard runs gc']:.2f} s "
        f"| `find .tuneyard/objects -mindepth 2 -type f -links 1 -delete` | {gc_busy['find']:.2f} s |\n"
        f"| `runs gc`, nothing to do | {gc_idle:.2f} s | the same `find` | {find_idle:.2f} s |\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_training_flags(parser)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (each setting once per round)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first (imports, first calls)")
    parser.add_argument("--artifacts", type=int, default=10_000, help="du/gc yard size (0: skip)")
    parser.add_argument("--contents", type=int, default=400, help="distinct weight contents among them")
    parser.add_argument("--removed", type=int, default=1_000, help="artifacts deleted by hand before gc")
    parser.add_argument("--build-jobs", type=int, default=4, help="processes writing the du/gc yard")
    parser.add_argument("--repeats", type=int, default=3, help="timings per du/gc command (median)")
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()

    import torch
    import transformers

    quiet_libraries()
    with tempfile.TemporaryDirectory(prefix="tuneyard-objects-bench-") as scratch:
        runs, work = finetune_on_off(args, Path(scratch))
        scale = du_and_gc(args, Path(scratch)) if args.artifacts else ""
    du_version = run("du", "--version").splitlines()[0]
    block = (
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\n\n"
        f"{platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, load average "
        f"{os.getloadavg()[0]:.1f}, Python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, {du_version}; `{command_line('objects.py', args)}`\n\n"
        f"finetune ({args.model or 'all-MiniLM-L6-v2'}, full fine-tuning, {args.rows} rows, "
        f"{args.epochs:g} epoch(s), eval + checkpoint each epoch; timed from options to a completed run), "
        f"store on (default) vs off (`{SHARING_ENV}=off`), each round in a fresh yard:\n\n"
        f"{finetune_block(runs, work)}\n{scale}"
    )
    print(block)
    if not args.no_append:
        record("Shared bytes (bench/objects.py)", block)


if __name__ == "__main__":
    main()
