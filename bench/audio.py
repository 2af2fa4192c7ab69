"""Benchmark: ``tuneyard finetune`` of an audio classifier against a plain Trainer script.

Both train the same tiny Wav2Vec2 classifier (built from a config, as the tests build
it: no wheel ships a pretrained speech encoder) on the same espeak-ng spoken words
(``scripts/build_spoken_words.py``: 72 train and 24 validation clips) with the same
settings: full fine-tuning, learning rate, batch size, epochs, seed, every clip cropped
to its first ``--max-seconds`` and padded with silence to that length, evaluation and a
checkpoint once per epoch, logging every ``max(1, min(steps per epoch, 50))`` steps.
They run alternately (ABBA order) in this one process after ``--warmup`` untimed rounds.

The timer covers everything a user waits for. Plain script, as a competent user writes
it: ``load_dataset("audiofolder")``, the ``Audio`` column cast to the extractor's rate
(torchcodec decodes and resamples), the feature extractor mapped over both splits
(datasets caches the map, as tuneyard's extraction is cached), ``Trainer.train()`` with
an accuracy ``compute_metrics``, ``save_model()``. tuneyard: ``prepare_finetune`` (data,
every clip decoded once to check it, model, run folder, manifest, index) and
``PreparedFinetune.train()`` (``best/``, ``last/``, the training log and the final
manifest).

Headline: the Trainer loop's samples per second, tuneyard over plain, paired round by
round (the issue's target: overhead <= 3%), and the end-to-end time ratio. Appends to
``bench/RESULTS.md`` under ``## audio`` (not with ``--no-append``).

    python bench/audio.py                 # 3 epochs, 7 rounds
    python bench/audio.py --rounds 9 --epochs 5
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from finetune import (  # bench/: python bench/x.py puts it on sys.path
    accuracy_and_f1,
    plain_training_arguments,
)
from pairs import Run, alternate, quiet_libraries, report
from results import record

os.environ.setdefault("HF_HUB_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from audio_models import build_tiny_audio_model  # noqa: E402 - the tests' tiny Wav2Vec2


def spoken_words(target: Path) -> Path:
    """The espeak-ng words, made by the repository's script."""
    script = REPO / "scripts" / "build_spoken_words.py"
    subprocess.run([sys.executable, str(script), str(target)], check=True, capture_output=True)
    return target


def plain_trainer_run(model_dir: Path, data_dir: Path, output: Path, args: argparse.Namespace) -> Run:
    """What a user writes by hand: audiofolder, cast, extract, Trainer, train, save; all timed."""
    from datasets import Audio, load_dataset
    from transformers import (
        AutoFeatureExtractor,
        AutoModelForAudioClassification,
        Trainer,
        default_data_collator,
        set_seed,
    )

    started = time.perf_counter()
    raw = load_dataset("audiofolder", data_dir=str(data_dir))
    raw.pop("test")
    extractor = AutoFeatureExtractor.from_pretrained(model_dir)
    raw = raw.cast_column("audio", Audio(sampling_rate=extractor.sampling_rate, num_channels=1))
    labels = raw["train"].features["label"].names
    samples = round(args.max_seconds * extractor.sampling_rate)

    def encode(batch: dict[str, list[Any]]) -> Any:
        arrays = [clip.get_all_samples().data[0].numpy() for clip in batch["audio"]]
        features = extractor(
            arrays,
            sampling_rate=extractor.sampling_rate,
            max_length=samples,
            truncation=True,
            padding="max_length",
            return_attention_mask=True,
        )
        return {**features, "labels": batch["label"]}

    features = raw.map(encode, batched=True, remove_columns=raw["train"].column_names)
    set_seed(args.seed)
    model = AutoModelForAudioClassification.from_pretrained(
        model_dir,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: index for index, label in enumerate(labels)},
    )
    training_args = plain_training_arguments(output, args, len(features["train"]))
    trainer = Trainer(
        model=model,
        args=training_args,
        train_dataset=features["train"],
        eval_dataset=features["validation"],
        data_collator=default_data_collator,
        processing_class=extractor,
        compute_metrics=accuracy_and_f1,
    )
    loop_rate = trainer.train().metrics["train_samples_per_second"]
    trainer.save_model()
    return Run(time.perf_counter() - started, loop_rate)


def tuneyard_run(model_dir: Path, data_dir: Path, yard_root: Path, args: argparse.Namespace) -> Run:
    """The same training through tuneyard's recipe, from options to a completed run; all timed."""
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import prepare_finetune
    from tuneyard.yard.root import Yard

    started = time.perf_counter()
    options = FinetuneOptions(
        checkpoint=str(model_dir),
        data=str(data_dir),
        task_type="audio_classification",
        strategy="full",
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        task_options={"max_seconds": args.max_seconds},
        seed=args.seed,
        keep=1,
        project="bench",
    )
    result = prepare_finetune(options, Yard.open(yard_root)).train()
    return Run(time.perf_counter() - started, result.throughput["train_samples_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--family", default="wav2vec2", choices=("wav2vec2", "hubert", "whisper"))
    parser.add_argument("--epochs", type=float, default=3)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=1.0)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (each side once per round)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed rounds first (imports, first-call costs)"
    )
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()

    import torch
    import transformers

    quiet_libraries()
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = spoken_words(Path(scratch) / "words")
        model_dir = build_tiny_audio_model(Path(scratch) / "model", args.family)
        runs = alternate(
            partial(plain_trainer_run, model_dir, data_dir, args=args),
            partial(tuneyard_run, model_dir, data_dir, args=args),
            Path(scratch),
            args.rounds,
            args.warmup,
        )
    table, summary = report(runs, "both log every max(1, min(steps per epoch, 50)) steps")
    print(f"{table}\n{summary}")
    if args.no_append:
        return
    machine = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"transformers {transformers.__version__}"
    )
    record(
        "audio",
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\n\n"
        f"{machine}; load average {os.getloadavg()[0]:.1f}; `python bench/audio.py --family {args.family} "
        f"--epochs {args.epochs:g} --batch-size {args.batch_size} --max-seconds {args.max_seconds:g} "
        f"--rounds {args.rounds} --warmup {args.warmup}` (a tiny {args.family} classifier from a config, "
        "espeak-ng words: 72 train and 24 validation clips; full fine-tuning, eval + checkpoint each "
        "epoch; timed: data, features, model, training, saving, and for tuneyard the clip check, run "
        "folder, manifest and index).\n\n"
        f"{table}\n" + "".join(f"- {line}\n" for line in summary.splitlines()),
    )


if __name__ == "__main__":
    main()
