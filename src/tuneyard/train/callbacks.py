"""Trainer callbacks that file a run in the yard while it trains.

The Trainer owns the loop, checkpoint contents, resume and distribution; these
callbacks only add what tuneyard promises on top: the checkpoint names and keep-N,
``training_log.csv``, ``best/`` and ``last/``, the manifest and index kept current,
and a clean stop on Ctrl-C. All file writes happen on the main process only.
"""

from __future__ import annotations

import csv
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tuneyard.train import checkpoints, distributed

TIMING_KEYS = ("runtime", "samples_per_second", "steps_per_second")


def eval_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The Trainer's ``eval_*`` metrics without the prefix and without timings."""
    cleaned = {}
    for key, value in metrics.items():
        name = key.removeprefix("eval_")
        if key.startswith("eval_") and name not in TIMING_KEYS:
            cleaned[name] = float(value)
    return cleaned


class CheckpointLayout(TrainerCallback):
    """Promote each finished checkpoint to ``checkpoint-{epoch}-{step}``, keep the newest N.

    Also copies ``trainer_state.json`` to the run root, so the run's progress is
    readable without opening a checkpoint.
    """

    def __init__(self, run_dir: Path, keep: int) -> None:
        self.run_dir = run_dir
        self.keep = keep

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        distributed.barrier()  # every rank has written its RNG state into the staged checkpoint
        if state.is_world_process_zero:
            checkpoints.promote(self.run_dir, state.global_step, state.epoch)
            checkpoints.prune(self.run_dir, self.keep)
            state.save_to_json(str(self.run_dir / "trainer_state.json"))
        distributed.barrier()


class TrainingLog(TrainerCallback):
    """``training_log.csv``: one row per evaluation with epoch, step, losses, metrics, lr.

    ``train_loss`` is the mean training loss over the steps since the previous row
    (the Trainer's logged losses, weighted by how many steps each covers).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.loss_sum = 0.0
        self.loss_steps = 0
        self.last_logged_step: int | None = None
        self.learning_rate: float | None = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self.last_logged_step = state.global_step

    def _log_with_evaluation(self, control: TrainerControl) -> None:
        # A row needs the train loss up to this step: log whenever we evaluate.
        if control.should_evaluate:
            control.should_log = True

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._log_with_evaluation(control)

    def on_epoch_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        self._log_with_evaluation(control)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs and "loss" in logs:
            steps = state.global_step - (self.last_logged_step or 0)
            self.loss_sum += float(logs["loss"]) * steps
            self.loss_steps += steps
            self.last_logged_step = state.global_step
            self.learning_rate = logs.get("learning_rate", self.learning_rate)

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not metrics:
            return
        scores = eval_metrics(metrics)
        row: dict[str, Any] = {
            "epoch": round(float(state.epoch or 0.0), 4),
            "step": state.global_step,
            "train_loss": self.loss_sum / self.loss_steps if self.loss_steps else "",
            "val_loss": scores.pop("loss", ""),
        }
        row.update(scores)
        row["lr"] = self.learning_rate if self.learning_rate is not None else ""
        self.loss_sum, self.loss_steps = 0.0, 0
        append_row(self.path, row)


def append_row(path: Path, row: dict[str, Any]) -> None:
    """Append ``row`` under the file's existing header (written from ``row`` if new)."""
    exists = path.is_file() and path.stat().st_size > 0
    if exists:
        with path.open(newline="") as handle:
            header = next(csv.reader(handle))
    else:
        header = list(row)
    with path.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=header, extrasaction="ignore")
        if not exists:
            writer.writeheader()
        writer.writerow(row)


def truncate_log(path: Path, after_step: int) -> None:
    """Drop rows logged after ``after_step`` (they are replayed when a run resumes)."""
    if not path.is_file():
        return
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        return
    step_column = rows[0].index("step")
    kept = [rows[0]] + [row for row in rows[1:] if int(row[step_column]) <= after_step]
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(kept)


class BestModel(TrainerCallback):
    """Write ``best/`` when the chosen metric improves, and keep the manifest current.

    The comparison mirrors the Trainer's own (``metric_for_best_model``,
    ``greater_is_better``, strict improvement), and uses the Trainer's
    ``state.best_metric``, which a resumed run restores from its checkpoint.
    ``on_best(model, metrics, step)`` writes the folder; ``on_metrics(state, metrics, improved)``
    updates the manifest and index (once per evaluation, i.e. per epoch by default).
    """

    def __init__(
        self,
        metric: str,
        greater_is_better: bool,
        on_best: Callable[[Any, dict[str, float], int], None],
        on_metrics: Callable[[TrainerState, dict[str, float], bool], None],
    ) -> None:
        self.metric = metric
        self.greater_is_better = greater_is_better
        self.on_best = on_best
        self.on_metrics = on_metrics

    def improved(self, value: float, best: float | None) -> bool:
        if best is None:
            return True
        compare = np.greater if self.greater_is_better else np.less
        return bool(compare(value, best))

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        model: Any = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero or not metrics:
            return
        scores = eval_metrics(metrics)
        improved = self.improved(scores[self.metric], state.best_metric)
        if improved:
            self.on_best(model, scores, state.global_step)
        self.on_metrics(state, scores, improved)


class StopOnInterrupt(TrainerCallback):
    """Ctrl-C (SIGINT) saves a checkpoint and stops; a second Ctrl-C aborts at once."""

    def __init__(self) -> None:
        self.requested = False
        self.stopped_at: int | None = None
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous or signal.default_int_handler)

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        try:
            self._previous = signal.signal(signal.SIGINT, self._handle)
        except ValueError:  # not the main thread: leave signals alone
            self._previous = None

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if distributed.any_rank(self.requested, device=args.device):
            self.requested = True
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._previous is not None and not self.requested:
            signal.signal(signal.SIGINT, self._previous)
