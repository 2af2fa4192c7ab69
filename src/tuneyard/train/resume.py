"""Continuing a run that stopped: what may resume, its saved options, and the state to restart from.

A run folder holds the resolved options it started with (``config.yaml``), its
complete checkpoints and its ``training_log.csv``. Resuming refuses folders that are
no run or runs that finished, puts back a ``best/`` or ``last/`` that a kill caught
half-replaced, clears the Trainer's half-written staging, and drops the log rows after
the checkpoint it restarts from (the Trainer replays those steps and logs them again),
so the resumed run's log has every row once.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from tuneyard.components import distributed
from tuneyard.errors import ManifestError, TrainingError
from tuneyard.train import checkpoints
from tuneyard.train.options import FinetuneOptions
from tuneyard.yard.manifest import MANIFEST_FILE, Manifest, read_manifest_if_any

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard
    from tuneyard.yard.storage import Storage
    from tuneyard.yard.writer import RunWriter

CONFIG_FILE = "config.yaml"
LOG_FILE = "training_log.csv"


def read_saved_options(run_dir: Path) -> FinetuneOptions:
    """The resolved options a run was started with (its ``config.yaml``)."""
    config_file = run_dir / CONFIG_FILE
    if not config_file.is_file():
        raise TrainingError(
            f"{run_dir} is not a tuneyard fine-tuning run: it has no {CONFIG_FILE}.",
            "Give the run folder printed by `tuneyard finetune` (it holds manifest.json and config.yaml).",
        )
    return FinetuneOptions.model_validate(yaml.safe_load(config_file.read_text()))


def write_saved_options(storage: Storage, run_dir: Path, options: FinetuneOptions) -> None:
    """Save the resolved options as ``config.yaml``."""
    storage.write_text(
        run_dir / CONFIG_FILE, yaml.safe_dump(options.model_dump(mode="json"), sort_keys=False)
    )


def check_resumable(run_dir: Path, storage: Storage) -> Manifest:
    """Refuse to resume a folder that is not a run, or a run that already finished.

    The manifest is the yard's (on S3 the bucket's): another machine may have finished the run.
    """
    try:
        manifest = read_manifest_if_any(run_dir, storage)
    except ManifestError as exc:
        raise TrainingError(f"cannot resume {run_dir}: {exc.message}", exc.hint) from exc
    if manifest is None:
        found = (
            "no such run folder" if not run_dir.is_dir() else f"it has no {MANIFEST_FILE}: no tuneyard run"
        )
        raise TrainingError(f"cannot resume {run_dir}: {found}.", "Start it without --resume.")
    if manifest.status == "complete":
        raise TrainingError(
            f"run {run_dir} is complete; there is nothing to resume.",
            "Start a new run (it gets its own folder), or train longer from its best/ with --checkpoint.",
        )
    return manifest


def truncate_log(storage: Storage, path: Path, after_step: int) -> None:
    """Drop rows logged after ``after_step`` (they are replayed when a run resumes)."""
    try:
        rows = list(csv.reader(io.StringIO(storage.read_text(path))))
    except FileNotFoundError:
        return
    if not rows:
        return
    step_column = rows[0].index("step")
    kept = [rows[0]] + [row for row in rows[1:] if int(row[step_column]) <= after_step]
    text = io.StringIO()
    csv.writer(text).writerows(kept)
    storage.write_text(path, text.getvalue())


def reopen_run(yard: Yard, run_dir: Path) -> tuple[RunWriter | None, Path | None]:
    """Continue ``run_dir``: rank 0 repairs what a kill left; every rank learns the checkpoint to load.

    Returns the writer (rank 0) and the newest complete checkpoint (None: start from
    the first step).
    """
    run = None
    if distributed.is_main_process():
        yard.localize(run_dir)  # on S3: its checkpoints and log as the machine that ran it left them
        check_resumable(run_dir, yard.storage)
        run = yard.resume_run(run_dir)
        checkpoints.clear_staging(yard.storage, run_dir)
    distributed.barrier()
    resume_from = checkpoints.newest_checkpoint(run_dir)
    if run is not None:
        step = checkpoints.checkpoint_step(resume_from) if resume_from else 0
        truncate_log(yard.storage, run_dir / LOG_FILE, step)
    return run, resume_from
