"""Benchmark: recovery with and without the teacher, and what the teacher costs per step.

Setup (untimed): the real all-MiniLM-L6-v2 fine-tuned on ``--rows`` Debian topics rows
(full, 1 epoch), then compressed with whitened SVD at ``--ratio`` (its teacher is that
fine-tuned model). Then ``--rounds`` rounds, the side that goes first alternating
(ABBA), of the same recovery run (``--epochs`` over the same rows, batch ``--batch-size``,
max length 64): label-only (``--no-distill``) and distilled (the default teacher), both
through ``prepare_finetune(...).train()`` in this process.

Reported: each side's Trainer ``train_samples_per_second`` and their paired ratio; and the
teacher's seconds per step (filed by the run as ``metrics.distillation``) against one
plain inference pass of the teacher over the same batches (``torch.no_grad``), timed
right after the run. The teacher should cost about one inference pass per step:
target ratio <= 1.2.

    python bench/distill.py                  # 512 rows, ratio 0.5, 3 rounds
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from finetune import default_model, subset  # bench/: python bench/x.py puts it on sys.path
from pairs import quiet_libraries, spread
from results import record

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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=512)
    parser.add_argument("--ratio", type=float, default=0.5)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()

    import torch

    from tuneyard.yard.root import Yard

    quiet_libraries()
    with tempfile.TemporaryDirectory() as scratch:
        data = subset(REPO / "data" / "debian_topics", args.rows, 342, Path(scratch) / "data")
        yard = Yard.open(Path(scratch) / "yard")
        compressed = setup(yard, data, args.ratio)
        rates: dict[str, list[float]] = {"labels": [], "distilled": []}
        per_step: list[tuple[float, float]] = []
        for round_number in range(args.rounds):
            sides = [("labels", False), ("distilled", True)]
            for side, distill in sides if round_number % 2 == 0 else sides[::-1]:
                prepared, result = recovery(yard, compressed, data, args, f"{side}{round_number}", distill)
                rates[side].append(result.throughput["train_samples_per_second"])
                if distill:
                    cost = prepared.recorder.run.manifest.metrics["distillation"]
                    in_run = cost["teacher_seconds"] / cost["teacher_batches"]
                    per_step.append((in_run, plain_teacher_seconds_per_batch(prepared)))
            print(
                f"round {round_number + 1}: labels {rates['labels'][-1]:.1f} samples/s, distilled "
                f"{rates['distilled'][-1]:.1f} samples/s; teacher {per_step[-1][0] * 1000:.0f} ms/step in "
                f"the run, {per_step[-1][1] * 1000:.0f} ms/batch alone",
                flush=True,
            )
    speed = [d / label for label, d in zip(rates["labels"], rates["distilled"], strict=True)]
    teacher = [in_run / alone for in_run, alone in per_step]
    lines = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {platform.machine()}, {os.cpu_count()} CPUs, torch "
        f"{torch.__version__}, load average {os.getloadavg()[0]:.1f}; `python bench/distill.py --rows "
        f"{args.rows} --ratio {args.ratio} --rounds {args.rounds}` (MiniLM whiten, batch {args.batch_size})",
        "",
        f"- recovery samples/s, distilled / label-only, paired over {args.rounds} rounds: "
        f"**{spread(speed)}** "
        f"(medians {statistics.median(rates['distilled']):.1f} vs {statistics.median(rates['labels']):.1f})",
        f"- teacher seconds per step in the run / one plain inference pass per batch: "
        f"**{spread(teacher)}** "
        f"(target <= 1.2: {'met' if statistics.median(teacher) <= 1.2 else 'not met'})",
    ]
    print("\n".join(lines))
    if not args.no_append:
        record("distill", "\n".join(lines))


if __name__ == "__main__":
    main()
