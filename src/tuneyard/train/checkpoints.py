"""Checkpoint folders in a run: ``checkpoint-{epoch}-{step}``, newest-first, keep-N.

The Trainer writes ``checkpoint-{step}`` into a hidden staging folder (``.trainer/``);
only when a checkpoint is complete is it renamed (atomically) into the run as
``checkpoint-{epoch}-{step}``. So every visible checkpoint is complete, and a run
killed mid-save leaves only staging debris, which :func:`clear_staging` removes.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from tuneyard.yard.storage import TEMP_PREFIX, Storage

STAGING = ".trainer"
_NAME = re.compile(r"^checkpoint-(\d+)-(\d+)$")


def epoch_number(epoch: float | None) -> int:
    """The 1-based epoch a step belongs to (``state.epoch`` 0.5 -> 1, 1.0 -> 1, 1.25 -> 2)."""
    return max(1, math.ceil((epoch or 0.0) - 1e-6))


def checkpoint_name(epoch: float | None, step: int) -> str:
    """``checkpoint-{epoch}-{step}``, the FlashSVD naming users already script against."""
    return f"checkpoint-{epoch_number(epoch)}-{step}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints in ``run_dir``, oldest (lowest step) first."""
    found = []
    for child in run_dir.iterdir() if run_dir.is_dir() else ():
        match = _NAME.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(2)), child))
    return [path for _, path in sorted(found)]


def checkpoint_step(path: Path) -> int:
    """The global step in a checkpoint's name."""
    match = _NAME.match(path.name)
    if not match:
        raise ValueError(f"{path.name} is not a checkpoint-{{epoch}}-{{step}} folder")
    return int(match.group(2))


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The complete checkpoint with the highest step, or None."""
    checkpoints = list_checkpoints(run_dir)
    return checkpoints[-1] if checkpoints else None


def promote(storage: Storage, run_dir: Path, step: int, epoch: float | None) -> Path:
    """Publish the Trainer's finished ``.trainer/checkpoint-{step}`` into the run.

    The same step saved again after a resume replaces the older copy.
    """
    target = run_dir / checkpoint_name(epoch, step)
    storage.publish(run_dir / STAGING / f"checkpoint-{step}", target)
    return target


def prune(storage: Storage, run_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` checkpoints; returns what was deleted."""
    old = list_checkpoints(run_dir)[:-keep] if keep > 0 else []
    for path in old:
        storage.delete(path)
    return old


def clear_staging(storage: Storage, run_dir: Path) -> None:
    """Remove half-written leftovers of a killed run (staging and temporary files and folders)."""
    storage.delete(run_dir / STAGING)
    for entry in storage.list(run_dir):
        if entry.name.startswith(TEMP_PREFIX):
            storage.delete(run_dir / entry.name)
