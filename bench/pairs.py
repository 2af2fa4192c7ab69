"""Paired timing: ABBA rounds, per-round ratios, their median and range.

Every bench that compares two things measured in the same run uses :func:`rotate`:
``warmup`` untimed rounds (imports, first calls, caches: every side warmed), then
``rounds`` rounds in which every side runs once, the order reversed every other round
(A B, B A for two sides; A B C, C B A for three), so no side always runs first, after
another's garbage, on caches another warmed. A figure is the median of the per-round
ratios with their range (:func:`ratios`, :func:`spread`), never a best-of or one run.

``bench/finetune.py``, ``bench/sft.py`` and ``bench/dpo.py`` (the last two through
``bench/lora_comparison.py``) compare tuneyard with a plain script through :func:`alternate`
(each side's scratch folder removed after its round) and :func:`report`;
``bench/grid.py``, ``bench/distill.py``, ``bench/compress.py`` and ``bench/label.py``
call :func:`rotate` with their own sides.
"""

from __future__ import annotations

import argparse
import math
import shutil
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

TARGET = 1.03

Outcome = TypeVar("Outcome")


@dataclass(frozen=True)
class Run:
    """One timed run: wall seconds end to end, and the Trainer's own train_samples_per_second."""

    seconds: float
    loop_rate: float


# A side of the comparison: given a scratch folder of its own, run once and say how long it took.
Side = Callable[[Path], Run]


def tuneyard_run(
    model_dir: str, data_dir: Path, yard_root: Path | str, args: argparse.Namespace, **fields: Any
) -> Run:
    """tuneyard's side of a training bench, from options to a completed run; all timed.

    ``yard_root``: a folder, or a yard URL (``s3://bucket/prefix``, bench/object_storage.py).

    The bench's shared flags (epochs, learning rate, batch size, max length, seed) and
    ``fields`` (strategy, LoRA, task options) become the ``FinetuneOptions`` the verb builds.
    """
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import prepare_finetune
    from tuneyard.yard.root import Yard

    started = time.perf_counter()
    options = FinetuneOptions(
        checkpoint=model_dir,
        data=str(data_dir),
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
        keep=1,
        project="bench",
        **fields,
    )
    result = prepare_finetune(options, Yard.open(yard_root)).train()
    return Run(time.perf_counter() - started, result.throughput["train_samples_per_second"])


def logging_steps(train_rows: int, batch_size: int) -> int:
    """tuneyard's rule, followed by both sides: log every ``min(steps per evaluation, 50)`` steps."""
    return max(1, min(math.ceil(train_rows / batch_size), 50))


def spread(values: list[float], digits: int = 3) -> str:
    """``median (min..max)`` of paired ratios (or of times, with ``digits`` decimals)."""
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}..{max(values):.{digits}f})"


def ratios(numerators: list[float], denominators: list[float]) -> list[float]:
    """Round-by-round ratios of two sides measured in the same rounds."""
    return [top / bottom for top, bottom in zip(numerators, denominators, strict=True)]


def rotate(
    sides: Mapping[str, Callable[[int], Outcome]],
    rounds: int,
    warmup: int,
    after_round: Callable[[int, dict[str, Outcome]], None] | None = None,
) -> dict[str, list[Outcome]]:
    """``warmup`` untimed rounds, then ``rounds`` timed ones; each calls every side once.

    Each side is called with the round's number (negative in the warm-up, so a side can
    name its folders or runs uniquely); the order of ``sides`` is reversed every other
    round. ``after_round(number, outcomes)`` follows every round, warm-up ones included
    (to print the timed ones, or to remove scratch folders). Returns each side's timed
    outcomes, round by round.
    """
    timed: dict[str, list[Outcome]] = {name: [] for name in sides}
    order = list(sides.items())
    for round_number in range(-warmup, rounds):
        this_round = order if round_number % 2 == 0 else order[::-1]  # A B, then B A
        outcomes = {name: side(round_number) for name, side in this_round}
        if round_number >= 0:
            for name, outcome in outcomes.items():
                timed[name].append(outcome)
        if after_round is not None:
            after_round(round_number, outcomes)
    return timed


def alternate(plain: Side, tuned: Side, scratch: Path, rounds: int, warmup: int) -> dict[str, list[Run]]:
    """:func:`rotate` over a plain script and tuneyard, each round in scratch folders removed after it."""

    def folder(side: str, round_number: int) -> Path:
        return scratch / f"{side}{round_number}"

    def after_round(round_number: int, outcomes: dict[str, Run]) -> None:
        for side in outcomes:  # checkpoints add up to gigabytes over the rounds
            shutil.rmtree(folder(side, round_number), ignore_errors=True)
        if round_number >= 0:
            first, second = outcomes["plain"], outcomes["tuneyard"]
            print(
                f"round {round_number + 1}: plain {first.seconds:.2f} s, tuneyard {second.seconds:.2f} s, "
                f"ratio {second.seconds / first.seconds:.3f}",
                flush=True,
            )

    return rotate(
        {
            "plain": lambda round_number: plain(folder("plain", round_number)),
            "tuneyard": lambda round_number: tuned(folder("tuneyard", round_number)),
        },
        rounds,
        warmup,
        after_round,
    )


def report(runs: dict[str, list[Run]], logging: str) -> tuple[str, str]:
    """The per-round table and the summary lines (``logging``: how both sides log, for the record)."""
    pairs = list(zip(runs["plain"], runs["tuneyard"], strict=True))
    end_to_end = ratios([run.seconds for run in runs["tuneyard"]], [run.seconds for run in runs["plain"]])
    loop = ratios([run.loop_rate for run in runs["plain"]], [run.loop_rate for run in runs["tuneyard"]])
    table = (
        "| round | first | plain s | tuneyard s | ratio | plain Trainer loop samples/s "
        "| tuneyard Trainer loop samples/s | loop ratio |\n|---|---|---|---|---|---|---|---|\n"
    ) + "".join(
        f"| {i + 1} | {'plain' if i % 2 == 0 else 'tuneyard'} | {plain.seconds:.2f} | {tuned.seconds:.2f} "
        f"| {end_to_end[i]:.3f} | {plain.loop_rate:.2f} | {tuned.loop_rate:.2f} | {loop[i]:.3f} |\n"
        for i, (plain, tuned) in enumerate(pairs)
    )
    median = statistics.median(end_to_end)
    summary = "\n".join(
        [
            (
                f"end-to-end (all a user waits for), tuneyard / plain time, paired over {len(pairs)} rounds: "
                f"**{spread(end_to_end)}**, median overhead {100 * (median - 1):.1f}% "
                f"(target <= {100 * (TARGET - 1):.0f}%: {'met' if median <= TARGET else 'not met'})"
            ),
            (
                f"medians: plain {statistics.median(p.seconds for p, _ in pairs):.2f} s, "
                f"tuneyard {statistics.median(t.seconds for _, t in pairs):.2f} s; {logging}"
            ),
            "Trainer loop, tuneyard / plain time (train_samples_per_second inverted), "
            f"paired: {spread(loop)}",
        ]
    )
    return table, summary


def quiet_libraries() -> None:
    """No progress bars or warnings from datasets and transformers in the timed output."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
