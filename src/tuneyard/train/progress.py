"""Training progress on stderr: a rich bar with loss and ETA, or plain log lines (``--quiet``)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from tuneyard.train.callbacks import eval_metrics

SHOWN = ("loss", "accuracy")


def format_scores(scores: dict[str, float], metric: str) -> str:
    """``val_loss=0.41 accuracy=0.87`` plus the metric that picks best/, if another."""
    shown = [name for name in (*SHOWN, metric) if name in scores]
    return " ".join(
        f"{'val_' if name == 'loss' else ''}{name}={scores[name]:.4f}" for name in dict.fromkeys(shown)
    )


class RichProgress(TrainerCallback):
    """Show steps done / total, the latest train loss and the ETA; print each evaluation."""

    def __init__(self, console: Console, metric: str = "accuracy", quiet: bool = False) -> None:
        self.console = console
        self.metric = metric
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task: Any = None

    def on_train_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # No bar in a log or a pipe (rich would print blank lines there); evaluations still print.
        if not state.is_world_process_zero or self.quiet or not self.console.is_terminal:
            return
        self.progress = Progress(
            TextColumn("[bold]training"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.progress.start()
        self.task = self.progress.add_task(
            "train", total=state.max_steps, completed=state.global_step, loss=""
        )

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.progress is not None:
            self.progress.update(self.task, completed=state.global_step)

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **kwargs: Any,
    ) -> None:
        if self.progress is not None and logs and "loss" in logs:
            self.progress.update(self.task, loss=f"loss {logs['loss']:.4f}")

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
        scores = format_scores(eval_metrics(metrics), self.metric)
        line = f"epoch {state.epoch or 0:.2f} step {state.global_step}: {scores}"
        (self.progress.console if self.progress is not None else self.console).print(line, markup=False)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None
