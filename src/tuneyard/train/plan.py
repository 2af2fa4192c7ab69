"""The plan of a fine-tuning run: everything decided before any weight loads.

:func:`plan_finetune` turns options (and the data they name) into a
:class:`FinetunePlan`: which task type, strategy and metric, the learning rate, where
the run is filed and whether it continues an earlier one. A plan is immutable and
serialisable (:meth:`FinetunePlan.to_json`), so a grid worker on another machine can
run it with :func:`tuneyard.train.recipe.prepare_from_plan`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

from tuneyard.components import distributed
from tuneyard.errors import ConfigError
from tuneyard.models.checkpoint import StartingCheckpoint
from tuneyard.task_types.base import TrainingSettings
from tuneyard.train.checkpoints import STAGING
from tuneyard.train.options import FinetuneOptions
from tuneyard.yard.layout import run_name
from tuneyard.yard.manifest import Manifest

if TYPE_CHECKING:
    from tuneyard.data.loading import TaskData
    from tuneyard.task_types.base import TaskType
    from tuneyard.yard.root import Yard

LOWER_IS_BETTER = ("loss", "mse", "mae", "perplexity", "entropy")
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


@dataclass(frozen=True)
class FinetunePlan:
    """What a run trains, on what, how, and where it is filed."""

    options: FinetuneOptions
    parent: StartingCheckpoint
    task: str  # the task's name (its spec's), recorded in the manifest
    task_type: str
    strategy: str
    metric: str  # picks best/
    greater_is_better: bool
    learning_rate: float
    train_rows: int
    kind: Literal["run", "finetuned"]
    target: Path  # where a new run is filed: the layout's folder or --output-dir
    resume: Path | None = None  # the run folder this plan continues
    default_teacher: bool = False  # options.distill_from was chosen by tuneyard, not given

    @property
    def dataset(self) -> str:
        """The ``{dataset}`` of the layout and the key of the run's validation metrics."""
        return str(self.options.dataset_name())

    def training_arguments(self, run_dir: Path, task_type: TaskType) -> Any:
        """The Trainer's arguments: tuneyard's schedule and layout, then ``--set trainer.*`` extras."""
        try:
            return task_type.training.arguments_class()(**self.trainer_fields(run_dir, task_type))
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"the Trainer refused these settings: {exc}",
                "Check --set trainer.<field> names against transformers.TrainingArguments.",
            ) from exc

    def trainer_fields(self, run_dir: Path, task_type: TaskType) -> dict[str, Any]:
        """The keyword arguments of :meth:`training_arguments`."""
        options = self.options
        per_step = options.batch_size * options.grad_accum * distributed.world_size()
        interval = options.save_steps or max(1, math.ceil(self.train_rows / per_step))
        schedule = "steps" if options.save_steps else "epoch"
        fields: dict[str, Any] = {
            "output_dir": str(run_dir / STAGING),
            "num_train_epochs": options.epochs,
            "learning_rate": self.learning_rate,
            "per_device_train_batch_size": options.batch_size,
            "per_device_eval_batch_size": options.eval_batch_size or options.batch_size,
            "gradient_accumulation_steps": options.grad_accum,
            "weight_decay": options.weight_decay,
            "warmup_steps": options.warmup_ratio,
            "fp16": options.precision == "fp16",
            "bf16": options.precision == "bf16",
            # Non-reentrant checkpointing gives adapters behind frozen layers their gradients.
            "activation_checkpointing": options.gradient_checkpointing,
            "activation_checkpointing_kwargs": {"use_reentrant": False}
            if options.gradient_checkpointing
            else None,
            "seed": options.seed,
            "eval_strategy": schedule,
            "save_strategy": schedule,
            "logging_strategy": "steps",
            "logging_steps": max(1, min(interval, 50)),
            "save_total_limit": None,
            "metric_for_best_model": self.metric,
            "greater_is_better": self.greater_is_better,
            "load_best_model_at_end": False,
            "label_names": ["labels"],
            "report_to": [target for target in options.report_to if target != "tensorboard"] or "none",
            "disable_tqdm": True,
            "dataloader_pin_memory": distributed.has_gpu(),
            "use_cpu": distributed.cpu_processes(),
            **task_type.training.trainer_settings(training_settings(options, task_type)),
        }
        if options.save_steps:
            fields.update(eval_steps=options.save_steps, save_steps=options.save_steps)
        fields.update(options.trainer)
        return fields

    def manifest(self, yard: Yard) -> Manifest:
        """The first manifest of a new run of this plan."""
        from tuneyard.data.prepare import data_parents

        return Manifest(
            kind=self.kind,
            name=self.target.name,
            arch=self.parent.arch,
            method=self.parent.method,
            rank=self.parent.rank,
            strategy=self.strategy,
            task=self.task,
            task_type=self.task_type,
            dataset=self.dataset,
            project=self.options.project,
            parents=[
                yard.parent_link(self.parent.source, "init"),
                *(
                    [yard.parent_link(self.options.distill_from, "teacher")]
                    if self.options.distill_from
                    else []
                ),
                *data_parents(self.options.data, yard),
            ],
            inferred=self.parent.inferred,
            config=self.options.model_dump(mode="json"),
        )

    def to_json(self) -> str:
        """The plan as JSON text (what a worker on another machine needs)."""
        data = dataclasses.asdict(self)
        data["options"] = self.options.model_dump(mode="json")
        data["target"] = str(self.target)
        data["resume"] = str(self.resume) if self.resume else None
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> FinetunePlan:
        """Inverse of :meth:`to_json`."""
        data = json.loads(text)
        data["options"] = FinetuneOptions.model_validate(data["options"])
        data["parent"] = StartingCheckpoint(**data["parent"])
        data["target"] = Path(data["target"])
        data["resume"] = Path(data["resume"]) if data["resume"] else None
        return cls(**data)


def best_metric(options: FinetuneOptions, data: TaskData, task_type: TaskType) -> tuple[str, bool]:
    """``(metric, greater_is_better)`` for best/: ``--metric-for-best`` or the task's main metric."""
    metric = (options.metric_for_best or data.spec.main_metric).removeprefix("eval_")
    known = task_type.training.metric_names(data.spec)
    if metric not in known:
        raise ConfigError(
            f"--metric-for-best {metric!r} is not a metric of task {data.spec.name!r}.",
            f"Choose one of: {', '.join(known)}.",
        )
    return metric, metric not in LOWER_IS_BETTER


def run_target(
    options: FinetuneOptions, parent: StartingCheckpoint, strategy: str, yard: Yard
) -> tuple[Literal["run", "finetuned"], Path]:
    """``(kind, folder)``: ``outputs/{project}/{dataset}/{name}`` with --project, else
    ``models/finetuned/{arch}/{method}/{name}``; ``--output-dir`` replaces the whole path."""
    if options.project:
        model_type, model_size = parent.name_parts()
        layers = options.lora.layers if strategy in ("lora", "qlora") else None
        name = options.name or run_name(model_type, model_size, strategy, layers)
        return "run", yard.target_path(
            "run",
            output_dir=options.output_dir,
            project=options.project,
            dataset=options.dataset_name(),
            arch=parent.arch,
            name=name,
        )
    method = parent.method or strategy
    name = options.name or parent.folder_name
    return "finetuned", yard.target_path(
        "finetuned", output_dir=options.output_dir, arch=parent.arch, method=method, name=name
    )


def check_trainer_overrides(options: FinetuneOptions) -> None:
    """Refuse ``--set trainer.X`` for the fields that decide the run's layout and best/."""
    owned = sorted(OWNED_TRAINER_FIELDS.intersection(options.trainer))
    if owned:
        raise ConfigError(
            f"--set trainer.{owned[0]} is managed by tuneyard and cannot be overridden.",
            "Use --save-steps, --keep, --metric-for-best or --output-dir instead.",
        )
    check_sharding(options)


def check_sharding(options: FinetuneOptions) -> None:
    """Refuse FSDP where accelerate would quietly run DDP instead (no GPU or other accelerator).

    accelerate turns FSDP on only for multi-accelerator runs (``accelerate/state.py``): on
    CPU processes ``trainer.fsdp`` is dropped without a word and every rank holds the whole
    model, which is not what the user asked for.
    """
    import torch

    if options.trainer.get("fsdp") and (
        options.trainer.get("use_cpu") or not torch.accelerator.is_available()
    ):
        raise ConfigError(
            "--set trainer.fsdp needs GPUs (or another accelerator): accelerate shards a model with FSDP "
            "only across accelerators, and on CPU processes would run plain DDP instead.",
            "Drop trainer.fsdp on CPU (torchrun then runs DDP, which is tested), or launch on GPUs.",
        )


def training_settings(options: FinetuneOptions, task_type: TaskType) -> TrainingSettings:
    """What the options tell the task type's Trainer, its own options validated by its model.

    Options given for a task type that declares none (or fields its model does not have)
    are refused, naming the task type.
    """
    if task_type.options is None:
        if options.task_options:
            raise ConfigError(
                f"task_options {', '.join(options.task_options)} given, but {task_type.name} takes "
                "no options of its own.",
                "Drop them (a flag from another task type's --help panel), or choose that task type's data.",
            )
        return TrainingSettings(options.max_length, options.packing)
    return TrainingSettings(options.max_length, options.packing, task_options_of(options, task_type))


def task_options_of(options: FinetuneOptions, task_type: TaskType) -> Any:
    """``options.task_options`` as the task type's options model (a clear error naming the field)."""
    from pydantic import ValidationError

    from tuneyard.config import format_validation_error

    assert task_type.options is not None
    try:
        return task_type.options.model_validate(options.task_options)
    except ValidationError as exc:
        raise format_validation_error(task_type.options, exc) from exc


def recorded_task_options(settings: TrainingSettings) -> dict[str, Any]:
    """The task options a run records: those given, and those its task type's model filled in from them
    (a preference objective's beta and loss type), so the manifest says what the run trained with."""
    if settings.task_options is None:
        return {}
    recorded: dict[str, Any] = settings.task_options.model_dump(mode="json", exclude_unset=True)
    return recorded


def plan_finetune(
    options: FinetuneOptions, yard: Yard, data: TaskData, resume: bool | Path = False
) -> FinetunePlan:
    """Decide the run: refuses bad strategies, metrics and trainer fields before anything loads.

    ``resume``: the run folder to continue, or True for the one these options lead to.
    """
    from tuneyard.models.checkpoint import describe_checkpoint
    from tuneyard.task_types import get_task_type
    from tuneyard.task_types.model_loading import resolve_checkpoint
    from tuneyard.train.strategies import strategy_for

    check_trainer_overrides(options)
    task_type = get_task_type(data.spec.task_type)
    task_type.data.check_trainable(data)
    settings = training_settings(options, task_type)  # refuse task options the task type does not take
    metric, greater_is_better = best_metric(options, data, task_type)  # before a GGUF checkpoint converts
    parent = describe_checkpoint(resolve_checkpoint(options.checkpoint, yard), yard)
    strategy = strategy_for(options.strategy, parent.compressed)
    if options.freeze_factors and strategy.NAME != "lowrank":
        from tuneyard.errors import TrainingError

        raise TrainingError(
            f"--freeze-factors applies to --strategy lowrank (compressed models), not {strategy.NAME!r}.",
            "Drop --freeze-factors, or fine-tune a compressed checkpoint.",
        )
    dtype = load_dtype(options, parent, strategy)
    kind, target = run_target(options, parent, strategy.NAME, yard)
    resume_dir = resume if isinstance(resume, Path) else (target if resume else None)
    teacher = teacher_for(options, parent, strategy.NAME, yard)
    return FinetunePlan(
        options=options.model_copy(
            update={"distill_from": teacher, "dtype": dtype, "task_options": recorded_task_options(settings)}
        ),
        parent=parent,
        task=data.spec.name,
        task_type=task_type.name,
        strategy=strategy.NAME,
        metric=metric,
        greater_is_better=greater_is_better,
        learning_rate=options.learning_rate or strategy.DEFAULT_LEARNING_RATE,
        train_rows=len(data.split("train")),
        kind=kind,
        target=resume_dir or target,
        resume=resume_dir,
        default_teacher=teacher is not None and options.distill_from is None,
    )


def load_dtype(options: FinetuneOptions, parent: StartingCheckpoint, strategy: ModuleType) -> str:
    """The dtype the run loads its model in (``--dtype``, ``auto`` resolved), refused when the machine
    cannot train in it; a strategy with a quantized base checks the machine for that too.

    The plan's options record the resolved dtype, so the manifest and a resumed run name it.
    """
    from tuneyard.models.dtypes import check_trainable_dtype, resolve_load_dtype

    if hasattr(strategy, "check_machine"):
        if parent.compressed:
            raise ConfigError(
                f"--strategy {strategy.NAME} quantizes a plain model's layers; "
                f"{parent.source} is compressed.",
                "Use --strategy lowrank to train its factors.",
            )
        strategy.check_machine()
    on_gpu, bf16 = distributed.has_gpu(), distributed.gpu_has_bfloat16()
    dtype = resolve_load_dtype(options.dtype, parent.source, on_gpu, bf16)
    check_trainable_dtype(dtype, on_gpu, bf16, options.precision)
    return dtype


def teacher_for(
    options: FinetuneOptions, parent: StartingCheckpoint, strategy: str, yard: Yard
) -> str | None:
    """``--distill-from``, else the default teacher (unless ``--no-distill``)."""
    from tuneyard.train.distillation import default_teacher

    if options.no_distill and options.distill_from is not None:
        raise ConfigError(
            f"--no-distill and --distill-from {options.distill_from} contradict each other.",
            "Give one: --distill-from MODEL to learn its logits, --no-distill to train on the labels alone.",
        )
    if options.no_distill or options.distill_from is not None:
        return options.distill_from
    return default_teacher(parent, strategy, yard)
