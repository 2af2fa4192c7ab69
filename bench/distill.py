"""Benchmark: recovery with and without the teacher, and what the teacher costs per step.

Setup (untimed): the real all-MiniLM-L6-v2 fine-tuned on ``--rows`` Debian topics rows
(full, 1 epoch), then compressed with whitened SVD at ``--ratio`` (its teacher is that
fine-tuned model). Then ``--warmup`` untimed rounds and ``--rounds`` timed ones, the
side that goes first alternating (ABBA, ``bench/pairs.py``), of the same recovery run
(``--epochs`` over the same rows, batch ``--batch-size``, max length 64): label-only
(``--no-distill``) and distilled (the default teacher), both through
``prepare_finetune(...).train()`` in this process. The warm-up round pays the imports,
the first loads of student and teacher and the allocator's first growth, which a
first timed round would otherwise carry.

Reported, each as the median of the per-round ratios with their range: distilled /
label-only Trainer ``train_samples_per_second``; and the teacher's seconds per step
(filed by the run as ``metrics.distillation``) over one plain inference pass of the
teacher over the same batches (``torch.no_grad``), timed right after each distilled run.
The teacher should cost about one inference pass per step: target ratio <= 1.2.
Prints the command and the lines for ``bench/RESULTS.md`` (``## distill``), and appends
them there unless ``--no-append``.

    python bench/distill.py      # 512 rows, ratio 0.5, 1 warm-up + 5 rounds: about 6 min on 2 quiet cores
    python bench/distill.py --rows 32 --rounds 2 --no-append   # smoke run
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from finetune import default_model, subset  # bench/: python bench/x.py puts it on sys.path
from pairs import quiet_libraries, ratios, rotate, spread
from results import command_line, record

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent


def setup(yard: Any, data: Path, ratio: float) -> Path:
    """The fine-tuned MiniLM's compressed copy (its manifest leads back to the teacher)."""
    from tuneyard.compress.compressor import compress_model
    from tuneyard.compress.options import CompressOptions
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import finetune

    dense = FinetuneOptions(
        checkpoint=default_model(), data=str(data), name="dense", epochs=1, learning_rate=1e-4,
        batch_size=16, max_length=64,
    )  # fmt: skip
    best = finetune(dense, yard).path / "best"
    options = CompressOptions(
        model=str(best), method="whiten", ratio=ratio, data=str(data), calib_samples=128
    )
    return compress_model(options, yard).path


def recovery(
    yard: Any, compressed: Path, data: Path, args: argparse.Namespace, name: str, distill: bool
) -> Any:
    """One recovery run, prepared and trained; returns the prepared run and its result."""
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import prepare_finetune

    options = FinetuneOptions(
        checkpoint=str(compressed), data=str(data), name=name, epochs=args.epochs, learning_rate=1e-4,
        batch_size=args.batch_size, max_length=64, keep=1, no_distill=not distill,
    )  # fmt: skip
    prepared = prepare_finetune(options, yard)
    return prepared, prepared.train()


def plain_teacher_seconds_per_batch(prepared: Any) -> float:
    """The teacher alone, ``torch.no_grad``, over the run's training batches: seconds per batch."""
    import torch

    trainer = prepared.trainer()
    teacher = prepared.teacher.model
    batches = [
        {key: value for key, value in batch.items() if key != "labels"}
        for batch in trainer.get_train_dataloader()
    ]
    started = time.perf_counter()
    with torch.no_grad():
        for batch in batches:
            teacher(**batch)
    return (time.perf_counter() - started) / len(batches)


@dataclass(frozen=True)
class Recovery:
    """One recovery run: Trainer samples/s; distilled, the teacher's seconds per step in the run and alone."""

    samples_per_second: float
    teacher_in_run: float = math.nan
    teacher_alone: float = math.nan


def sides(
    yard: Any, compressed: Path, data: Path, args: argparse.Namespace
) -> dict[str, Callable[[int], Recovery]]:
    """Label-only and distilled recovery, each a run named by its side and round."""

    def run(side: str, round_number: int) -> Recovery:
        distill = side == "distilled"
        prepared, result = recovery(yard, compressed, data, args, f"{side}{round_number}", distill)
        rate = result.throughput["train_samples_per_second"]
        if not distill:
            return Recovery(rate)
        cost = prepared.recorder.run.manifest.metrics["distillation"]
        in_run = cost["teacher_seconds"] / cost["teacher_batches"]
        return Recovery(rate, in_run, plain_teacher_seconds_per_batch(prepared))

    return {side: partial(run, side) for side in ("labels", "distilled")}


def print_round(round_number: int, runs: dict[str, Recovery]) -> None:
    labels, distilled = runs["labels"], runs["distilled"]
    print(
        f"{'warm-up' if round_number < 0 else f'round {round_number + 1}'}: labels "
        f"{labels.samples_per_second:.1f} samples/s, distilled {distilled.samples_per_second:.1f} samples/s; "
        f"teacher {distilled.teacher_in_run * 1000:.0f} ms/step in the run, "
        f"{distilled.teacher_alone * 1000:.0f} ms/batch alone",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (each side once per round)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds of both sides first")
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()

    import torch

    from tuneyard.yard.root import Yard

    quiet_libraries()
    with tempfile.TemporaryDirectory() as scratch:
        data = subset(REPO / "data" / "debian_topics", args.rows, 342, Path(scratch) / "data")
        yard = Yard.open(Path(scratch) / "yard")
        compressed = setup(yard, data, args.ratio)
        runs = rotate(sides(yard, compressed, data, args), args.rounds, args.warmup, print_round)
    labels = [run.samples_per_second for run in runs["labels"]]
    distilled = [run.samples_per_second for run in runs["distilled"]]
    teacher = ratios(
        [run.teacher_in_run for run in runs["distilled"]], [run.teacher_alone for run in runs["distilled"]]
    )
    lines = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, load average {os.getloadavg()[0]:.1f}; `{command_line('distill.py', args)}` "
        "(MiniLM whiten)",
        "",
        f"- recovery samples/s, distilled / label-only, paired over {args.rounds} rounds after "
        f"{args.warmup} warm-up: **{spread(ratios(distilled, labels))}** "
        f"(medians {statistics.median(distilled):.1f} vs {statistics.median(labels):.1f})",
        f"- teacher seconds per step in the run / one plain inference pass per batch: "
        f"**{spread(teacher)}** "
        f"(target <= 1.2: {'met' if statistics.median(teacher) <= 1.2 else 'not met'})",
    ]
    print("\n".join(lines))
    if not args.no_append:
        record("distill", "\n".join(lines))


if __name__ == "__main__":
    main()
