"""The fine-tuning recipe, top to bottom: plan, data, model, strategy, run folder, Trainer.

:func:`prepare_finetune` does everything up to the first training step (so a caller
can show what will train and where it goes): it loads the data, decides the
:class:`~tuneyard.train.plan.FinetunePlan`, loads the model through the data's task
type, applies the strategy and opens the run folder. :meth:`PreparedFinetune.train`
runs the Hugging Face Trainer with the callbacks that feed the run's recorder.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from tuneyard.components import distributed
from tuneyard.components.distillation import Teacher
from tuneyard.data.loading import TaskData
from tuneyard.errors import ConfigError, ModelError, TrainingError
from tuneyard.models.layout import layout_of
from tuneyard.task_types import data_loading, get_task_type
from tuneyard.task_types.base import LoadSettings, TaskType
from tuneyard.train.artifacts import name_adapter_base
from tuneyard.train.distillation import load_teacher
from tuneyard.train.options import DEFAULT_MAX_LENGTH, FinetuneOptions
from tuneyard.train.plan import FinetunePlan, plan_finetune, training_settings
from tuneyard.train.project import write_project_outputs
from tuneyard.train.recorder import TENSORBOARD_DIR, RunRecorder
from tuneyard.train.resume import check_resumable, read_saved_options, reopen_run, write_saved_options
from tuneyard.train.strategies import STRATEGIES, parameter_counts
from tuneyard.yard.root import Yard
from tuneyard.yard.writer import RunWriter

THROUGHPUT_KEYS = ("train_runtime", "train_samples_per_second", "train_steps_per_second")


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
    """A run ready to train: its plan, data, model with its strategy applied, and its folder."""

    plan: FinetunePlan
    yard: Yard
    data: TaskData
    task_type: TaskType
    strategy: ModuleType
    model: Any
    tokenizer: Any
    run_dir: Path
    arguments: Any  # transformers.TrainingArguments, built once for this run folder
    recorder: RunRecorder | None  # None on processes other than rank 0
    resume_from: Path | None = None
    notes: list[str] = field(default_factory=list)  # what the user should know before training
    teacher: Teacher | None = None  # --distill-from's model

    @property
    def options(self) -> FinetuneOptions:
        return self.plan.options

    @property
    def metric(self) -> str:
        """The metric that picks best/."""
        return self.plan.metric

    @property
    def run(self) -> RunWriter | None:
        """The run's writer on rank 0 (None elsewhere)."""
        return self.recorder.run if self.recorder is not None else None

    @property
    def resumed(self) -> bool:
        return self.plan.resume is not None

    @property
    def renamed(self) -> bool:
        """True when the layout's folder was taken and the run got a ``-N`` suffix."""
        return self.run is not None and self.run.renamed

    @property
    def parameter_counts(self) -> tuple[int, int]:
        """``(trainable, total)`` parameters of the model as it will train."""
        return parameter_counts(self.model)

    def train(self, callbacks: list[Any] | None = None) -> FinetuneResult:
        """Train with the HF Trainer; the recorder files checkpoints, logs, best/, last/ and the end."""
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        from tuneyard.train.callbacks import ResourceLog, StopOnInterrupt, first_callback

        stopper = StopOnInterrupt()
        try:
            trainer = self.trainer()
            for default in (PrinterCallback, ProgressCallback):
                trainer.remove_callback(default)
            for callback in (stopper, *(callbacks or ())):
                trainer.add_callback(callback)
            first_callback(trainer, ResourceLog())  # before --report-to's integrations read the line
            output = trainer.train(resume_from_checkpoint=str(self.resume_from) if self.resume_from else None)
        except BaseException:
            if self.recorder is not None:
                self.recorder.failed()
            raise
        distributed.barrier()
        throughput = {key: float(output.metrics[key]) for key in THROUGHPUT_KEYS if key in output.metrics}
        recorder = self.recorder
        if recorder is not None:
            if self.teacher is not None:
                recorder.run.manifest.metrics["distillation"] = trainer.cost()
            if stopper.requested:
                recorder.interrupted(trainer.state, throughput)
            else:
                recorder.finished(trainer.state, throughput)
                write_project_outputs(self)  # after `complete` is in the index: metrics.csv lists this run
        return FinetuneResult(
            path=self.run_dir,
            best_metrics=recorder.best_metrics if recorder else {},
            last_metrics=recorder.last_metrics if recorder else {},
            interrupted=stopper.requested,
            stopped_at_step=stopper.stopped_at,
            throughput=throughput,
        )

    def trainer(self) -> Any:
        """The task type's Trainer for this run, with tuneyard's callbacks (and tensorboard on rank 0)."""
        from transformers.integrations.integration_utils import TensorBoardCallback

        from tuneyard.train.callbacks import BestModel, CheckpointLayout, TrainingLog

        callbacks = [
            CheckpointLayout(self.recorder),
            TrainingLog(self.recorder),
            BestModel(self.plan.metric, self.plan.greater_is_better, self.recorder),
        ]
        if self.recorder is not None:
            from torch.utils.tensorboard import SummaryWriter

            callbacks.append(TensorBoardCallback(SummaryWriter(str(self.run_dir / TENSORBOARD_DIR))))
        return self.task_type.training.build_trainer(
            self.model,
            self.arguments,
            self.data,
            self.tokenizer,
            training_settings(self.options, self.task_type),
            callbacks,
            self.teacher,
        )


def load_data(options: FinetuneOptions) -> TaskData:
    """The options' data, with the validation split carved the same way on every rank."""
    with distributed.main_process_first():
        return data_loading.load_data(
            options, seed=options.seed, validation_fraction=options.validation_fraction
        )


def open_run(yard: Yard, plan: FinetunePlan, task_type: TaskType) -> tuple[RunWriter | None, Path, Any]:
    """A new run folder and the Trainer's arguments for it.

    Rank 0 claims the folder (``-2`` if taken) and every rank learns its path; the
    arguments are built once, for that folder, before anything is written into it, so
    a setting the Trainer refuses leaves no run behind. Then rank 0 writes the manifest
    and the saved options.
    """
    claimed = yard.claim(plan.target) if distributed.is_main_process() else None
    run_dir = Path(distributed.share_from_main(str(claimed) if claimed else None))
    try:
        arguments = plan.training_arguments(run_dir, task_type)
    except BaseException:
        if claimed is not None:
            yard.storage.delete(claimed)
        raise
    run = None
    if claimed is not None:
        run = yard.start_run(plan.manifest(yard), plan.target, claimed=claimed)
        write_saved_options(yard.storage, run.path, plan.options)
    return run, run_dir, arguments


def load_run_tokenizer(plan: FinetunePlan, task_type: TaskType, data: TaskData) -> tuple[FinetunePlan, Any]:
    """The run's tokenizer: the checkpoint's own, or ``--tokenizer``'s (a folder or hub id).

    A local ``--tokenizer`` folder is recorded by its absolute path, so the run's
    manifest says where its tokenizer came from wherever the run is read.
    """
    source = plan.options.tokenizer
    if source is None:
        return plan, task_type.model.load_tokenizer(plan.parent, data.spec)
    folder = Path(source).expanduser()
    if folder.is_dir():
        source = str(folder.resolve())
    try:
        tokenizer = task_type.model.load_tokenizer(replace(plan.parent, source=source), data.spec)
    except ModelError as exc:
        if source not in exc.message:  # about the checkpoint (not a decoder ...), not the tokenizer
            raise
        raise ModelError(
            f"--tokenizer {plan.options.tokenizer}: {exc.message}",
            "Give a folder holding tokenizer files (tokenizer_config.json, tokenizer.json) or a hub id.",
        ) from exc
    return replace(plan, options=plan.options.model_copy(update={"tokenizer": source})), tokenizer


def check_tokenizer_fits(model: Any, tokenizer: Any, source: str) -> None:
    """Refuse a ``--tokenizer`` with token ids past the model's embeddings (training would fail on them)."""
    embeddings = model.get_input_embeddings()
    rows = getattr(embeddings, "num_embeddings", None)
    if rows is not None and len(tokenizer) > rows:
        raise ModelError(
            f"--tokenizer {source} has {len(tokenizer)} tokens, but the model embeds only {rows}.",
            "Give the tokenizer the checkpoint was trained with (or one with the same vocabulary).",
        )


def fit_max_length(
    plan: FinetunePlan, task_type: TaskType, data: TaskData, tokenizer: Any
) -> tuple[FinetunePlan, list[str]]:
    """The plan with ``--max-length`` settled, and a note on the choice where tuneyard made it.

    Without ``--max-length``, the data's task type fits one to the data (chat rows: the
    longest, within the model's context), else :data:`DEFAULT_MAX_LENGTH`. The chosen
    value is what the run's saved options and manifest record, so a resumed run keeps it.
    """
    if plan.options.max_length is not None:
        return plan, []
    fitted = task_type.data.fitting_max_length(data, tokenizer, plan.parent)
    length, notes = fitted or (DEFAULT_MAX_LENGTH, [])
    return replace(plan, options=plan.options.model_copy(update={"max_length": length})), notes


def prepare_from_plan(plan: FinetunePlan, yard: Yard, data: TaskData | None = None) -> PreparedFinetune:
    """Load the model of ``plan`` through its task type, apply its strategy, open (or reopen) its run.

    What a grid worker calls with a plan made elsewhere (``FinetunePlan.from_json``).
    """
    distributed.init_process_group()
    options = plan.options
    data = data or load_data(options)
    task_type = get_task_type(plan.task_type)
    strategy = STRATEGIES[plan.strategy]
    plan, tokenizer = load_run_tokenizer(plan, task_type, data)
    plan, notes = fit_max_length(plan, task_type, data, tokenizer)
    options = plan.options
    notes += task_type.data.check_lengths(data, tokenizer, training_settings(options, task_type))
    quantization = strategy.quantization_config() if hasattr(strategy, "quantization_config") else None
    settings = LoadSettings(dtype=options.dtype, quantization=quantization)
    model = task_type.model.load(plan.parent, data.spec, options.reset_head, options.seed, settings)
    if options.tokenizer is not None:
        check_tokenizer_fits(model, tokenizer, options.tokenizer)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    model = strategy.apply(model, options, layout_of(model), task_type)
    name_adapter_base(model, plan.parent)  # the Trainer's checkpoints record where the base is
    teacher, teacher_notes = load_run_teacher(plan, task_type, model)  # refused before a run folder exists
    notes += teacher_notes
    resume_from = None
    if plan.resume is not None:
        run, resume_from = reopen_run(yard, plan.resume)
        run_dir, arguments = plan.resume, plan.training_arguments(plan.resume, task_type)
    else:
        run, run_dir, arguments = open_run(yard, plan, task_type)
    recorder = RunRecorder(run, plan, model, tokenizer) if run is not None else None
    if recorder is not None and plan.resume is not None:
        recorder.resume_from_manifest()
    return PreparedFinetune(
        plan=plan,
        yard=yard,
        data=data,
        task_type=task_type,
        strategy=strategy,
        model=model,
        tokenizer=tokenizer,
        run_dir=run_dir,
        arguments=arguments,
        recorder=recorder,
        resume_from=resume_from,
        notes=notes,
        teacher=teacher,
    )


def load_run_teacher(plan: FinetunePlan, task_type: TaskType, model: Any) -> tuple[Teacher | None, list[str]]:
    """The run's teacher (checked against the student) and notes for the user.

    A default teacher that does not fit (other labels) is dropped with a note, and the
    plan's options forget it before the run folder records them; one given with
    ``--distill-from`` is refused.
    """
    source = plan.options.distill_from
    if source is None:
        return None, []
    if not task_type.training.distills:
        raise ConfigError(
            f"--distill-from is not built for {task_type.name} models yet.",
            "Train on the labels alone: leave out --distill-from (or add --no-distill).",
        )
    if not plan.default_teacher:
        return load_teacher(source, model, plan.options.distill, task_type), []
    try:
        teacher = load_teacher(source, model, plan.options.distill, task_type)
    except ConfigError as exc:
        plan.options = plan.options.model_copy(update={"distill_from": None})
        reason = f"note: not distilling from {source}, the model this one was compressed from: {exc.message}"
        return None, [reason]
    return teacher, [
        f"note: distilling from {source}, the fine-tuned model this one was compressed from "
        "(--no-distill trains on the labels alone)."
    ]


def prepare_finetune(
    options: FinetuneOptions | None, yard: Yard, resume: bool | Path = False
) -> PreparedFinetune:
    """Everything before the first step: data, plan, model + strategy, run folder (new or resumed).

    ``resume``: a run folder to continue with its saved options, or True to continue
    the run the given options lead to (same flags as when it started).
    """
    if isinstance(resume, Path):
        resume = yard.localize(resume)  # on S3: the run as another machine left it
        check_resumable(resume, yard.storage)
        options = read_saved_options(resume)
    if options is None:
        raise TrainingError("no options given and no run folder to resume.")
    options = options.in_yard(yard)  # --data NAME: the yard's dataset of that name
    distributed.init_process_group()
    data = load_data(options)
    return prepare_from_plan(plan_finetune(options, yard, data, resume), yard, data)


def finetune(
    options: FinetuneOptions,
    yard: Yard | None = None,
    resume: bool | Path = False,
    callbacks: list[Any] | None = None,
) -> FinetuneResult:
    """Fine-tune ``options.checkpoint`` and file the run in ``yard`` (default: the working directory's)."""
    prepared = prepare_finetune(options, yard or Yard.open(), resume)
    return prepared.train(callbacks)
