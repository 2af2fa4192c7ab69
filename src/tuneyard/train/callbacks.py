"""Trainer callbacks: they notice what happens in training and tell the run's recorder.

The Trainer owns the loop, checkpoint contents, resume and distribution; these
callbacks pick out the moments tuneyard files something (a checkpoint saved, an
evaluation, its log row) and call :class:`~tuneyard.train.recorder.RunRecorder`
directly, plus a clean stop on Ctrl-C. Only the main process has a recorder (None on
the others), so all file writes happen there.
"""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Any

import numpy as np
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tuneyard.components import distributed
from tuneyard.train.resources import resource_usage, step_usage

if TYPE_CHECKING:
    from tuneyard.train.recorder import RunRecorder

# Evaluation outputs that are not scores: timings, and TRL's count of tokens trained on.
NOT_SCORES = ("runtime", "samples_per_second", "steps_per_second", "num_tokens")


def eval_metrics(metrics: dict[str, float]) -> dict[str, float]:
    """The Trainer's ``eval_*`` metrics without the prefix, timings and counts."""
    cleaned = {}
    for key, value in metrics.items():
        name = key.removeprefix("eval_")
        if key.startswith("eval_") and name not in NOT_SCORES:
            cleaned[name] = float(value)
    return cleaned


class CheckpointLayout(TrainerCallback):
    """Each finished checkpoint goes to the recorder, which publishes it as ``checkpoint-{epoch}-{step}``."""

    def __init__(self, recorder: RunRecorder | None) -> None:
        self.recorder = recorder

    def on_save(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        distributed.barrier()  # every rank has written its RNG state into the staged checkpoint
        if self.recorder is not None:
            self.recorder.checkpoint_saved(state)
        distributed.barrier()


class ResourceLog(TrainerCallback):
    """Adds the process's memory (and GPU use) to every training log line the Trainer reports.

    It must run before the reporting integrations (TensorBoard, W&B, ...), which read the
    same ``logs`` dict in their own ``on_log``: :func:`first_callback` puts it first.
    """

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if logs is not None and "loss" in logs:  # a training step's line, not an evaluation's
            logs.update(step_usage(args.device))


def first_callback(trainer: Any, callback: TrainerCallback) -> None:
    """Register ``callback`` ahead of every other one (the Trainer appends; order is the call order)."""
    trainer.callback_handler.callbacks.insert(0, callback)


class TrainingLog(TrainerCallback):
    """``training_log.csv``: one row per evaluation with epoch, step, losses, metrics, lr, and
    the memory (and GPU use) the process holds then (:mod:`tuneyard.train.resources`).

    ``train_loss`` is the mean training loss over the steps since the previous row
    (the Trainer's logged losses, weighted by how many steps each covers).
    """

    def __init__(self, recorder: RunRecorder | None) -> None:
        self.recorder = recorder
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
        if self.recorder is None or not metrics:
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
        row.update(resource_usage(args.device))
        self.loss_sum, self.loss_steps = 0.0, 0
        self.recorder.log_row(row)


class BestModel(TrainerCallback):
    """Tell the recorder each evaluation's scores and whether the chosen metric improved.

    The comparison mirrors the Trainer's own (``metric_for_best_model``,
    ``greater_is_better``, strict improvement), and uses the Trainer's
    ``state.best_metric``, which a resumed run restores from its checkpoint.
    """

    def __init__(self, metric: str, greater_is_better: bool, recorder: RunRecorder | None) -> None:
        self.metric = metric
        self.greater_is_better = greater_is_better
        self.recorder = recorder

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
        **kwargs: Any,
    ) -> None:
        if self.recorder is None or not metrics:
            return
        scores = eval_metrics(metrics)
        improved = self.improved(scores[self.metric], state.best_metric)
        self.recorder.evaluated(state, scores, improved, saving=control.should_save)


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
