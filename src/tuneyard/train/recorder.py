"""The run's recorder: what the Trainer's callbacks report, filed in the yard as it happens.

The Trainer owns the loop, checkpoint contents, resume and distribution; the callbacks
(:mod:`tuneyard.train.callbacks`) notice events and call this recorder directly, which
writes through the yard: ``training_log.csv`` rows, checkpoints published as
``checkpoint-{epoch}-{step}`` (keep-N), ``best/`` when the metric improves, the
manifest's metrics and progress after each evaluation, and at the end ``last/`` and
the final status. Only the main process has a recorder.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.train import checkpoints
from tuneyard.train.checkpoints import STAGING
from tuneyard.train.resume import LOG_FILE
from tuneyard.train.strategies import parameter_counts
from tuneyard.yard.manifest import Manifest, TrainingProgress

if TYPE_CHECKING:
    from transformers import TrainerState

    from tuneyard.train.plan import FinetunePlan
    from tuneyard.yard.writer import RunWriter

TENSORBOARD_DIR = "tensorboard"
STATE_FILE = "trainer_state.json"


@dataclass(frozen=True)
class Evaluation:
    """One evaluation's scores and where training stood, until they are filed."""

    step: int
    epoch: float | None
    max_steps: int
    scores: dict[str, float]
    improved: bool


def state_json(state: TrainerState) -> str:
    """``trainer_state.json`` as the Trainer writes it (``TrainerState.save_to_json``'s format)."""
    return json.dumps(dataclasses.asdict(state), indent=2, sort_keys=True) + "\n"


@dataclass
class RunRecorder:
    """Files one run while it trains; see the module docstring."""

    run: RunWriter
    plan: FinetunePlan
    model: Any
    tokenizer: Any
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_step: int | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)
    log_header: list[str] | None = None  # training_log.csv's columns, once known
    pending: Evaluation | None = None  # scored, to be filed with the checkpoint of its step

    @property
    def path(self) -> Path:
        return self.run.path

    def resume_from_manifest(self) -> None:
        """The best and latest scores a resumed run had filed (replayed steps may not reach them)."""
        manifest = self.run.manifest
        self.best_metrics = manifest.metrics.get(self.plan.dataset, {})
        if manifest.training is not None:
            self.best_step = manifest.training.best_step
            self.last_metrics = manifest.training.last

    def log_row(self, row: dict[str, Any]) -> None:
        """Append one row to ``training_log.csv`` under its header (written from ``row`` when new)."""
        target = self.path / LOG_FILE
        storage = self.run.yard.storage
        if self.log_header is None:  # read once: the header of a resumed run's log
            try:
                self.log_header = next(csv.reader(io.StringIO(storage.read_text(target))), None)
            except FileNotFoundError:
                self.log_header = None
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=self.log_header or list(row), extrasaction="ignore")
        if self.log_header is None:
            writer.writeheader()
            self.log_header = list(row)
        writer.writerow(row)
        storage.append_text(target, text.getvalue())

    def checkpoint_saved(self, state: TrainerState) -> None:
        """File this step's evaluation, publish the staged checkpoint, prune, copy its state to the run root.

        The evaluation goes first, its ``best/`` linked from the staged checkpoint's
        files: a run killed before the checkpoint is published resumes from the one
        before and evaluates this step again.
        """
        storage = self.run.yard.storage
        if self.pending is not None:
            self._file(self.pending, self.path / STAGING / f"checkpoint-{state.global_step}")
            self.pending = None
        checkpoints.promote(storage, self.path, state.global_step, state.epoch)
        checkpoints.prune(storage, self.path, self.plan.options.keep)
        storage.write_text(self.path / STATE_FILE, state_json(state))

    def evaluated(self, state: TrainerState, scores: dict[str, float], improved: bool, saving: bool) -> None:
        """After each evaluation: filed with the checkpoint when the Trainer is about to save one, or now."""
        self.last_metrics = scores
        evaluation = Evaluation(state.global_step, state.epoch, state.max_steps, scores, improved)
        if saving:
            self.pending = evaluation
        else:
            self._file(evaluation, None)

    def _file(self, evaluation: Evaluation, checkpoint: Path | None) -> None:
        """``best/`` if the metric improved (from ``checkpoint`` when given), then the manifest's scores."""
        if evaluation.improved:
            self.best_metrics, self.best_step = evaluation.scores, evaluation.step
            self._write_model("best", evaluation.scores, checkpoint)
        dataset = self.plan.dataset

        def record(manifest: Manifest) -> None:
            if evaluation.improved:  # same key as `tuneyard eval` on the validation split; other keys stay
                manifest.metrics[dataset] = evaluation.scores
            previous = manifest.training or TrainingProgress()
            manifest.training = previous.model_copy(
                update={
                    "epoch": evaluation.epoch,
                    "step": evaluation.step,
                    "max_steps": evaluation.max_steps,
                    "metric_for_best": self.plan.metric,
                    "best_step": evaluation.step if evaluation.improved else previous.best_step,
                    "last": evaluation.scores,
                }
            )

        self.run.update(record)

    def finished(self, state: TrainerState, throughput: dict[str, float]) -> None:
        """Training ran to its end: write ``last/``, the speed, and mark the run complete."""
        self._wrap_up(state, throughput)
        self._write_last(state.global_step)
        self.run.complete()

    def interrupted(self, state: TrainerState, throughput: dict[str, float]) -> None:
        """Ctrl-C stopped training after a checkpoint: the run stays resumable, marked failed."""
        self._wrap_up(state, throughput)
        self.run.fail(f"interrupted at step {state.global_step}")

    def failed(self) -> None:
        """Training raised: mark the run failed (its folder stays for inspection or ``--resume``)."""
        self.run.fail()

    def _wrap_up(self, state: TrainerState, throughput: dict[str, float]) -> None:
        """The final Trainer state at the run root, no staging debris; speed and size in the manifest view."""
        storage = self.run.yard.storage
        storage.write_text(self.path / STATE_FILE, state_json(state))
        checkpoints.clear_staging(storage, self.path)
        trainable, total = parameter_counts(self.model)
        sizes = {"trainable_parameters": trainable, "total_parameters": total}
        manifest = self.run.manifest
        manifest.training = (manifest.training or TrainingProgress()).model_copy(
            update={**throughput, **sizes}
        )

    def _write_last(self, final_step: int) -> None:
        """``last/``: shares the files of ``best/`` or of the final checkpoint when they hold its weights."""
        from tuneyard.train.artifacts import link_model_folder

        if self.best_step == final_step:
            metrics = {self.plan.dataset: self.last_metrics} if self.last_metrics else {}
            link_model_folder(self.run, "best", "last", metrics)
            return
        newest = checkpoints.newest_checkpoint(self.path)
        final = newest if newest and checkpoints.checkpoint_step(newest) == final_step else None
        self._write_model("last", self.last_metrics, final)

    def _write_model(self, subfolder: str, scores: dict[str, float], checkpoint: Path | None) -> None:
        """``run/<subfolder>`` from ``checkpoint``'s files (the live weights), else from the live model."""
        from tuneyard.train.artifacts import model_folder_from_checkpoint, write_model_folder

        metrics = {self.plan.dataset: scores} if scores else {}
        parent = self.plan.parent
        if checkpoint is None or not model_folder_from_checkpoint(
            self.run, subfolder, checkpoint, self.model, parent, metrics
        ):
            write_model_folder(self.run, subfolder, self.model, self.tokenizer, parent, metrics)
