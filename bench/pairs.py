"""Paired timing of tuneyard against a plain script: ABBA rounds, per-round ratios, the summary.

``bench/finetune.py`` (a classifier, plain Trainer), ``bench/sft.py`` and ``bench/dpo.py``
(a causal LM, plain TRL, through ``bench/lora_comparison.py``) time their two sides with
this: ``--warmup`` untimed rounds, then ``--rounds`` rounds in which the side that goes
first alternates, each side's scratch folder removed after its round.
"""

from __future__ import annotations

import math
import shutil
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

TARGET = 1.03


@dataclass(frozen=True)
class Run:
    """One timed run: wall seconds end to end, and the Trainer's own train_samples_per_second."""

    seconds: float
    loop_rate: float


# A side of the comparison: given a scratch folder of its own, run once and say how long it took.
Side = Callable[[Path], Run]


def logging_steps(train_rows: int, batch_size: int) -> int:
    """tuneyard's rule, followed by both sides: log every ``min(steps per evaluation, 50)`` steps."""
    return max(1, min(math.ceil(train_rows / batch_size), 50))


def spread(values: list[float]) -> str:
    """``median (min..max)`` of paired ratios."""
    return f"{statistics.median(values):.3f} ({min(values):.3f}..{max(values):.3f})"


def alternate(plain: Side, tuned: Side, scratch: Path, rounds: int, warmup: int) -> dict[str, list[Run]]:
    """``warmup`` untimed rounds, then ``rounds`` rounds in ABBA order (who goes first alternates)."""
    runs: dict[str, list[Run]] = {"plain": [], "tuneyard": []}
    for round_number in range(-warmup, rounds):
        folders = {"plain": scratch / f"plain{round_number}", "tuneyard": scratch / f"yard{round_number}"}
        sides = [("plain", plain), ("tuneyard", tuned)]
        # Neither side always runs first (after the other's garbage, on a cache it warmed).
        for side, run in sides if round_number % 2 == 0 else sides[::-1]:
            outcome = run(folders[side])
            if round_number >= 0:
                runs[side].append(outcome)
        for folder in folders.values():  # checkpoints add up to gigabytes over the rounds
            shutil.rmtree(folder, ignore_errors=True)
        if round_number >= 0:
            first, second = runs["plain"][-1], runs["tuneyard"][-1]
            print(
                f"round {round_number + 1}: plain {first.seconds:.2f} s, tuneyard {second.seconds:.2f} s, "
                f"ratio {second.seconds / first.seconds:.3f}",
                flush=True,
            )
    return runs


def report(runs: dict[str, list[Run]], logging: str) -> tuple[str, str]:
    """The per-round table and the summary lines (``logging``: how both sides log, for the record)."""
    pairs = list(zip(runs["plain"], runs["tuneyard"], strict=True))
    end_to_end = [tuned.seconds / plain.seconds for plain, tuned in pairs]
    loop = [plain.loop_rate / tuned.loop_rate for plain, tuned in pairs]
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
