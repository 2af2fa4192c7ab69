"""The fine-tuning recipe, top to bottom: data, model, strategy, run folder, Trainer.

:func:`prepare_finetune` does everything up to the first training step (so a caller
can show what will train and where it goes); :meth:`PreparedFinetune.train` runs the
Hugging Face Trainer with tuneyard's callbacks and closes the run.
"""

from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

import yaml

from tuneyard.data.loading import TaskData, load_task_data
from tuneyard.errors import ConfigError, DataError, ManifestError, TrainingError
from tuneyard.models.family import family_for
from tuneyard.train import checkpoints, distributed
from tuneyard.train.options import FinetuneOptions
from tuneyard.train.parent import ParentModel, describe_checkpoint
from tuneyard.train.strategies import parameter_counts, strategy_for
from tuneyard.train.tasks import task_type_for
from tuneyard.yard.layout import run_name
from tuneyard.yard.manifest import Manifest, read_manifest
from tuneyard.yard.root import Yard
from tuneyard.yard.writer import RunWriter

CONFIG_FILE = "config.yaml"
LOG_FILE = "training_log.csv"
TENSORBOARD_DIR = "tensorboard"
LOWER_IS_BETTER = ("loss", "mse", "mae")
THROUGHPUT_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second")
# TrainingArguments fields that decide the run's layout, checkpoints and best/: tuneyard sets them.
OWNED_TRAINER_FIELDS = frozenset(
    {
        "output_dir",
        "eval_strategy",
        "save_strategy",
        "eval_steps",
        "save_steps",
        "save_total_limit",
        "metric_for_best_model",
        "greater_is_better",
        "load_best_model_at_end",
        "label_names",
        "disable_tqdm",
    }
)


@dataclass
class FinetuneResult:
    """Where the run went and how it ended."""

    path: Path
    best_metrics: dict[str, float]
    last_metrics: dict[str, float]
    interrupted: bool = False
    stopped_at_step: int | None = None
    throughput: dict[str, float] = field(default_factory=dict)  # the Trainer's train_runtime, samples/s


@dataclass
class PreparedFinetune:
    """A run ready to train: data, model with its strategy applied, and its folder."""

    options: FinetuneOptions
    yard: Yard
    data: TaskData
    task: ModuleType
    parent: ParentModel
    strategy: ModuleType
    model: Any
    tokenizer: Any
    run_dir: Path
    run: RunWriter | None  # None on processes other than rank 0
    metric: str
    greater_is_better: bool
    resume_from: Path | None = None
    resumed: bool = False
    renamed: bool = False
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_step: int | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)

    @property
    def parameter_counts(self) -> tuple[int, int]:
        """``(trainable, total)`` parameters of the model as it will train."""
        return parameter_counts(self.model)

    @property
    def learning_rate(self) -> float:
        """``--learning-rate``, or the strategy's usual rate."""
        return self.options.learning_rate or self.strategy.DEFAULT_LEARNING_RATE

    def train(self, callbacks: list[Any] | None = None) -> FinetuneResult:
        """Train with the HF Trainer; write checkpoints, logs, best/ and last/; close the run."""
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        from tuneyard.train.callbacks import StopOnInterrupt

        stopper = StopOnInterrupt()
        try:
            trainer = self._trainer()
            for default in (PrinterCallback, ProgressCallback):
                trainer.remove_callback(default)
            for callback in (stopper, *(callbacks or ())):
                trainer.add_callback(callback)
            output = trainer.train(resume_from_checkpoint=str(self.resume_from) if self.resume_from else None)
        except BaseException:
            if self.run is not None:
                self.run.fail()
            raise
        distributed.barrier()
        throughput = {key: float(output.metrics[key]) for key in THROUGHPUT_KEYS if key in output.metrics}
        if self.run is not None:
            self.run.manifest.training = {  # type: ignore[attr-defined]
                **(getattr(self.run.manifest, "training", None) or {}),
                **throughput,
            }
            trainer.state.save_to_json(str(self.run_dir / "trainer_state.json"))
            checkpoints.clear_staging(self.run_dir)
            if stopper.requested:
                self.run.manifest.stop_reason = f"interrupted at step {stopper.stopped_at}"  # type: ignore[attr-defined]
                self.run.fail()
            else:
                self._write_last(trainer.state.global_step)
                self.run.complete()
        return FinetuneResult(
            path=self.run_dir,
            best_metrics=self.best_metrics,
            last_metrics=self.last_metrics,
            interrupted=stopper.requested,
            stopped_at_step=stopper.stopped_at,
            throughput=throughput,
        )

    def _trainer(self) -> Any:
        from transformers import Trainer
        from transformers.integrations.integration_utils import TensorBoardCallback

        from tuneyard.train.callbacks import BestModel, CheckpointLayout, TrainingLog

        with main_process_first():
            tokenized = self.task.encode(self.data, self.tokenizer, self.options.max_length)
        callbacks = [
            CheckpointLayout(self.run_dir, self.options.keep),
            TrainingLog(self.run_dir / LOG_FILE),
            BestModel(self.metric, self.greater_is_better, self._on_best, self._on_metrics),
        ]
        if distributed.is_main_process():
            from torch.utils.tensorboard import SummaryWriter

            callbacks.append(TensorBoardCallback(SummaryWriter(str(self.run_dir / TENSORBOARD_DIR))))
        return Trainer(
            model=self.model,
            args=training_arguments(
                self.options,
                self.run_dir,
                self.learning_rate,
                self.metric,
                self.greater_is_better,
                len(tokenized["train"]),
            ),
            train_dataset=tokenized["train"],
            eval_dataset=tokenized["validation"],
            data_collator=self.task.collator(self.tokenizer),
            processing_class=self.tokenizer,
            compute_metrics=self.task.compute_metrics(self.data.spec),
            callbacks=callbacks,
        )

    def _on_best(self, model: Any, scores: dict[str, float], step: int) -> None:
        self.best_metrics = scores
        self.best_step = step
        self._write_model("best", scores)

    def _write_last(self, final_step: int) -> None:
        """``last/``: shares ``best/``'s files when nothing trained since best/ was written."""
        from tuneyard.train.artifacts import link_model_folder

        if self.run is not None and self.best_step == final_step:
            metrics = (
                {self.options.dataset_name(): self.last_metrics} if self.last_metrics else {}
            )
            link_model_folder(self.run, "best", "last", metrics)
        else:
            self._write_model("last", self.last_metrics)

    def _on_metrics(self, state: Any, scores: dict[str, float], improved: bool) -> None:
        """After each evaluation: record the best metrics and progress in the manifest and index."""
        self.last_metrics = scores
        if self.run is None:
            return
        manifest = self.run.manifest
        if improved:  # same key as `tuneyard eval` on the validation split; other keys stay
            manifest.metrics = {**manifest.metrics, self.options.dataset_name(): scores}
        manifest.training = {  # type: ignore[attr-defined]
            "epoch": state.epoch,
            "step": state.global_step,
            "max_steps": state.max_steps,
            "metric_for_best": self.metric,
            "best_step": state.global_step
            if improved
            else (getattr(manifest, "training", None) or {}).get("best_step"),
            "last": scores,
        }
        self.run.save()

    def _write_model(self, subfolder: str, scores: dict[str, float]) -> None:
        from tuneyard.train.artifacts import write_model_folder

        if self.run is None:
            return
        metrics = {self.options.dataset_name(): scores} if scores else {}
        write_model_folder(self.run, subfolder, self.model, self.tokenizer, self.parent, metrics)


def torch_has_accelerator() -> bool:
    """Pinned host memory only helps when batches go to a GPU."""
    import torch

    return torch.cuda.is_available()


@contextlib.contextmanager
def main_process_first() -> Any:
    """Let rank 0 fill the datasets cache before the other ranks read it."""
    if distributed.world_size() <= 1:
        yield
        return
    from accelerate import PartialState

    with PartialState(cpu=distributed.cpu_processes()).main_process_first():
        yield


def best_metric(options: FinetuneOptions, data: TaskData, task: ModuleType) -> tuple[str, bool]:
    """``(metric, greater_is_better)`` for best/: ``--metric-for-best`` or the task's main metric."""
    metric = (options.metric_for_best or data.spec.main_metric).removeprefix("eval_")
    known = task.metric_names(data.spec)
    if metric not in known:
        raise ConfigError(
            f"--metric-for-best {metric!r} is not a metric of task {data.spec.name!r}.",
            f"Choose one of: {', '.join(known)}.",
        )
    return metric, metric not in LOWER_IS_BETTER


def run_target(
    options: FinetuneOptions, parent: ParentModel, strategy: str, yard: Yard
) -> tuple[Literal["run", "finetuned"], Path]:
    """``(kind, folder)``: ``outputs/{project}/{dataset}/{name}`` with --project, else
    ``models/finetuned/{arch}/{method}/{name}``; ``--output-dir`` replaces the whole path."""
    if options.project:
        model_type, model_size = parent.name_parts()
        layers = options.lora.layers if strategy == "lora" else None
        name = options.name or run_name(model_type, model_size, strategy, layers)
        return "run", yard.target_path(
            "run",
            output_dir=options.output_dir,
            project=options.project,
            dataset=options.dataset_name(),
            name=name,
        )
    method = parent.method or strategy
    name = options.name or parent.folder_name
    return "finetuned", yard.target_path(
        "finetuned", output_dir=options.output_dir, arch=parent.arch, method=method, name=name
    )


def training_arguments(
    options: FinetuneOptions,
    run_dir: Path,
    learning_rate: float,
    metric: str,
    greater_is_better: bool,
    train_rows: int,
) -> Any:
    """The Trainer's arguments: tuneyard's schedule and layout, then ``--set trainer.*`` extras."""
    from transformers import TrainingArguments

    per_step = options.batch_size * options.grad_accum * distributed.world_size()
    interval = options.save_steps or max(1, math.ceil(train_rows / per_step))
    schedule = "steps" if options.save_steps else "epoch"
    arguments: dict[str, Any] = {
        "output_dir": str(run_dir / checkpoints.STAGING),
        "num_train_epochs": options.epochs,
        "learning_rate": learning_rate,
        "per_device_train_batch_size": options.batch_size,
        "per_device_eval_batch_size": options.eval_batch_size or options.batch_size,
        "gradient_accumulation_steps": options.grad_accum,
        "weight_decay": options.weight_decay,
        "warmup_steps": options.warmup_ratio,
        "fp16": options.precision == "fp16",
        "bf16": options.precision == "bf16",
        "seed": options.seed,
        "eval_strategy": schedule,
        "save_strategy": schedule,
        "logging_strategy": "steps",
        "logging_steps": max(1, min(interval, 50)),
        "save_total_limit": None,
        "metric_for_best_model": metric,
        "greater_is_better": greater_is_better,
        "load_best_model_at_end": False,
        "label_names": ["labels"],
        "report_to": [target for target in options.report_to if target != "tensorboard"] or "none",
        "disable_tqdm": True,
        "dataloader_pin_memory": torch_has_accelerator(),
        "use_cpu": distributed.cpu_processes(),
        # Classification losses are per-example means; the token-count rescaling meant for
        # language modelling would multiply them (and the gradients) by the process count.
        "average_tokens_across_devices": False,
    }
    if options.save_steps:
        arguments.update(eval_steps=options.save_steps, save_steps=options.save_steps)
    arguments.update(options.trainer)
    try:
        return TrainingArguments(**arguments)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"the Trainer refused these settings: {exc}",
            "Check --set trainer.<field> names against transformers.TrainingArguments.",
        ) from exc


def check_trainer_overrides(options: FinetuneOptions) -> None:
    """Refuse ``--set trainer.X`` for the fields that decide the run's layout and best/."""
    owned = sorted(OWNED_TRAINER_FIELDS.intersection(options.trainer))
    if owned:
        raise ConfigError(
            f"--set trainer.{owned[0]} is managed by tuneyard and cannot be overridden.",
            "Use --save-steps, --keep, --metric-for-best or --output-dir instead.",
        )


def read_saved_options(run_dir: Path) -> FinetuneOptions:
    """The resolved options a run was started with (its ``config.yaml``)."""
    config_file = run_dir / CONFIG_FILE
    if not config_file.is_file():
        raise TrainingError(
            f"{run_dir} is not a tuneyard fine-tuning run: it has no {CONFIG_FILE}.",
            "Give the run folder printed by `tuneyard finetune` (it holds manifest.json and config.yaml).",
        )
    return FinetuneOptions.model_validate(yaml.safe_load(config_file.read_text()))


def write_saved_options(run_dir: Path, options: FinetuneOptions) -> None:
    """Save the resolved options atomically as ``config.yaml``."""
    temp = run_dir / f".{CONFIG_FILE}.{os.getpid()}.tmp"
    temp.write_text(yaml.safe_dump(options.model_dump(mode="json"), sort_keys=False))
    os.replace(temp, run_dir / CONFIG_FILE)


def check_resumable(run_dir: Path) -> Manifest:
    """Refuse to resume a folder that is not a run, or a run that already finished."""
    if not run_dir.is_dir():
        raise TrainingError(f"cannot resume {run_dir}: no such run folder.", "Start it without --resume.")
    try:
        manifest = read_manifest(run_dir)
    except ManifestError as exc:
        raise TrainingError(f"cannot resume {run_dir}: {exc.message}", exc.hint) from exc
    if manifest.status == "complete":
        raise TrainingError(
            f"run {run_dir} is complete; there is nothing to resume.",
            "Start a new run (it gets its own folder), or train longer from its best/ with --checkpoint.",
        )
    return manifest


def open_run(
    yard: Yard, manifest: Manifest, target: Path, options: FinetuneOptions
) -> tuple[RunWriter | None, Path]:
    """Rank 0 reserves the run folder (``-2`` if taken) and saves the options; all ranks learn its path."""
    run = None
    if distributed.is_main_process():
        run = yard.start_run(manifest, target)
        write_saved_options(run.path, options)
    return run, Path(distributed.share_from_main(str(run.path) if run else None))


def reopen_run(yard: Yard, run_dir: Path) -> tuple[RunWriter | None, Path, Path | None]:
    """Continue ``run_dir``: rank 0 clears a killed run's debris and the log rows to replay.

    Returns the writer (rank 0), the folder, and the newest complete checkpoint (None:
    start from the first step).
    """
    from tuneyard.train.callbacks import truncate_log

    run = None
    if distributed.is_main_process():
        check_resumable(run_dir)
        run = yard.resume_run(run_dir)
        checkpoints.clear_staging(run_dir)
    distributed.barrier()
    resume_from = checkpoints.newest_checkpoint(run_dir)
    if run is not None:
        truncate_log(run_dir / LOG_FILE, checkpoints.checkpoint_step(resume_from) if resume_from else 0)
    return run, run_dir, resume_from


def prepare_finetune(
    options: FinetuneOptions | None, yard: Yard, resume: bool | Path = False
) -> PreparedFinetune:
    """Everything before the first step: data, model + strategy, run folder (new or resumed).

    ``resume``: a run folder to continue with its saved options, or True to continue
    the run the given options lead to (same flags as when it started).
    """
    if isinstance(resume, Path):
        check_resumable(resume)
        options = read_saved_options(resume)
    if options is None:
        raise TrainingError("no options given and no run folder to resume.")
    check_trainer_overrides(options)
    distributed.init_process_group()
    with main_process_first():
        data = load_task_data(
            task=options.task,
            data_dir=options.data,
            text_column=options.text_column,
            text_pair_column=options.text_pair_column,
            label_column=options.label_column,
            seed=options.seed,
            validation_fraction=options.validation_fraction,
        )
    if data.spec.problem == "classification" and data.spec.num_labels < 2:
        raise DataError(
            f"{data.source} has {data.spec.num_labels} distinct label(s); classification needs at least 2.",
            "Check --label-column.",
        )
    parent = describe_checkpoint(options.checkpoint)
    strategy = strategy_for(options.strategy, parent.compressed)
    if options.freeze_factors and strategy.NAME != "lowrank":
        raise TrainingError(
            f"--freeze-factors applies to --strategy lowrank (compressed models), not {strategy.NAME!r}.",
            "Drop --freeze-factors, or fine-tune a compressed checkpoint.",
        )
    family = family_for(parent.arch)
    task = task_type_for(data.spec)
    metric, greater_is_better = best_metric(options, data, task)
    learning_rate = options.learning_rate or strategy.DEFAULT_LEARNING_RATE
    # Built once here only to refuse bad --set trainer.* values before a run folder exists.
    training_arguments(
        options, Path("unused"), learning_rate, metric, greater_is_better, len(data.split("train"))
    )

    tokenizer = task.load_tokenizer(parent)
    model = task.load_model(parent, data.spec, options.reset_head, options.seed)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model = strategy.apply(model, options, family)

    kind, target = run_target(options, parent, strategy.NAME, yard)
    if resume:
        run, run_dir, resume_from = reopen_run(yard, resume if isinstance(resume, Path) else target)
    else:
        manifest = Manifest(
            kind=kind,
            name=target.name,
            arch=parent.arch,
            method=parent.method,
            rank=parent.rank,
            strategy=strategy.NAME,
            task=data.spec.name,
            dataset=options.dataset_name(),
            project=options.project,
            parents=[yard.parent_link(parent.source, "init")],
            inferred=parent.inferred,
            config=options.model_dump(mode="json"),
        )
        run, run_dir = open_run(yard, manifest, target, options)
        resume_from = None
    prepared = PreparedFinetune(
        options=options,
        yard=yard,
        data=data,
        task=task,
        parent=parent,
        strategy=strategy,
        model=model,
        tokenizer=tokenizer,
        run_dir=run_dir,
        run=run,
        metric=metric,
        greater_is_better=greater_is_better,
        resume_from=resume_from,
        resumed=bool(resume),
        renamed=bool(run and run.renamed),
    )
    if run is not None and resume:
        prepared.best_metrics = run.manifest.metrics.get(options.dataset_name(), {})
    return prepared


def finetune(
    options: FinetuneOptions,
    yard: Yard | None = None,
    resume: bool | Path = False,
    callbacks: list[Any] | None = None,
) -> FinetuneResult:
    """Fine-tune ``options.checkpoint`` and file the run in ``yard`` (default: the working directory's)."""
    prepared = prepare_finetune(options, yard or Yard.open(), resume)
    return prepared.train(callbacks)
