"""``sequence_classification``: single texts and sentence pairs to a class (or a score, STS-B).

The task type every GLUE task and every local folder of ``text`` / ``label`` rows
has. Its parts live in the modules beside this one: ``data`` (columns and labels),
``encoding`` (tokenization), ``model`` (loading for training, eval and compression),
``metrics``, ``evaluation`` and ``eval_files`` (the eval loop and its files) and
``calibration`` (batches and a linear probe for compression). This module puts them
into the task type's roles.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import DataError
from tuneyard.task_types.base import (
    PROBE_TEXT,
    CompressionRole,
    CompressionSubject,
    DataRole,
    EvaluationRole,
    LoadSettings,
    ProgressCallback,
    TaskType,
    TrainingRole,
    TrainingSettings,
)
from tuneyard.task_types.classifier import ClassifierModel
from tuneyard.task_types.sequence_classification import data, model

if TYPE_CHECKING:
    import torch
    from datasets import Dataset

    from tuneyard.components.calibration import Batch, CalibrationSet
    from tuneyard.components.distillation import Teacher
    from tuneyard.data.loading import TaskData
    from tuneyard.data.options import ColumnOptions
    from tuneyard.data.tasks import TaskSpec
    from tuneyard.models.checkpoint import StartingCheckpoint
    from tuneyard.task_types.sequence_classification.eval_files import ClassificationResult


class TextClassificationData(DataRole):
    """A text column (and optionally a second one) with a label column."""

    def recognize(self, column_names: list[str], columns: ColumnOptions) -> int:
        return 2 if columns.text_column in column_names else 0

    def named_tasks(self) -> dict[str, TaskSpec]:
        from tuneyard.task_types.sequence_classification.glue import GLUE_TASKS

        return GLUE_TASKS

    def load_named(self, spec: TaskSpec) -> dict[str, Dataset]:
        return data.load_named(spec)

    def load_folder(
        self, folder: Path, columns: ColumnOptions, require_labels: bool
    ) -> tuple[TaskSpec, dict[str, Dataset]]:
        return data.load_folder(folder, columns, require_labels)

    def check_trainable(self, task_data: TaskData) -> None:
        spec = task_data.spec
        if spec.problem == "classification" and spec.num_labels < 2:
            raise DataError(
                f"{task_data.source} has {spec.num_labels} distinct label(s); "
                "classification needs at least 2.",
                "Check --label-column.",
            )


class TextClassifierModel(ClassifierModel):
    """``AutoModelForSequenceClassification`` with its tokenizer."""

    architecture_mapping = "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES"

    def load_tokenizer(self, checkpoint: StartingCheckpoint, spec: TaskSpec) -> Any:
        return model.load_tokenizer(checkpoint)

    def load(
        self,
        checkpoint: StartingCheckpoint,
        spec: TaskSpec,
        reset_head: bool,
        seed: int,
        settings: LoadSettings = LoadSettings(),
    ) -> Any:
        return model.load_model(checkpoint, spec, reset_head, seed, settings)

    def load_for_eval(self, folder: Path, device: torch.device) -> tuple[Any, Any]:
        return model.load_for_eval(folder, device)

    def load_adapter_base(self, base: Path | str, adapter: Path) -> Any:
        return model.load_adapter_base(base, adapter)

    def probe_inputs(self, tokenizer: Any) -> dict[str, Any]:
        return dict(tokenizer(PROBE_TEXT, return_tensors="pt"))


class ClassifierTraining(TrainingRole):
    """The plain Trainer on tokenized rows, each batch padded to its longest row; a teacher distils."""

    distills = True

    def build_trainer(
        self,
        classifier: Any,
        arguments: Any,
        task_data: TaskData,
        tokenizer: Any,
        settings: TrainingSettings,
        callbacks: list[Any],
        teacher: Teacher | None = None,
    ) -> Any:
        from transformers import DataCollatorWithPadding, Trainer

        from tuneyard.components.distillation import distilling_trainer_class
        from tuneyard.components.distributed import main_process_first
        from tuneyard.task_types.sequence_classification.encoding import tokenize_task
        from tuneyard.task_types.sequence_classification.metrics import trainer_metrics

        with main_process_first():
            tokenized = tokenize_task(task_data, tokenizer, settings.max_length)
        trainer_class, extra = (
            (Trainer, {}) if teacher is None else (distilling_trainer_class(Trainer), {"teacher": teacher})
        )
        return trainer_class(
            **extra,
            model=classifier,
            args=arguments,
            train_dataset=tokenized["train"],
            eval_dataset=tokenized["validation"],
            data_collator=DataCollatorWithPadding(tokenizer),
            processing_class=tokenizer,
            compute_metrics=trainer_metrics(task_data.spec),
            callbacks=callbacks,
        )

    def metric_names(self, spec: TaskSpec) -> list[str]:
        from tuneyard.task_types.sequence_classification.metrics import metric_names

        return ["loss", *metric_names(spec)]

    def trainer_settings(self, settings: TrainingSettings) -> dict[str, Any]:
        # Classification losses are per-example means; the token-count rescaling meant for
        # language modelling would multiply them (and the gradients) by the process count.
        return {"average_tokens_across_devices": False}


class ClassifierEvaluation(EvaluationRole):
    """Classify the split and score it (``answers`` concerns generative task types only)."""

    def evaluate(
        self,
        classifier: Any,
        tokenizer: Any,
        dataset: Dataset,
        spec: TaskSpec,
        split: str,
        batch_size: int,
        max_length: int | None,
        progress: ProgressCallback | None = None,
        answers: Any = None,
        task_options: Any = None,
    ) -> ClassificationResult:
        from tuneyard.task_types.sequence_classification.evaluation import evaluate_classifier

        return evaluate_classifier(
            classifier, tokenizer, dataset, spec, split, batch_size, max_length, progress
        )


class ClassifierCompression(CompressionRole):
    """Tokenized calibration rows; a bare base gets a linear probe where Fisher weights need a head."""

    def load_for_compression(self, model_id: str, spec: TaskSpec | None, seed: int) -> CompressionSubject:
        return model.load_for_compression(model_id, spec, seed)

    def calibration_batches(
        self, tokenizer: Any, rows: Dataset, spec: TaskSpec, batch_size: int, max_length: int
    ) -> list[Batch]:
        from tuneyard.task_types.sequence_classification.calibration import tokenized_batches

        return tokenized_batches(tokenizer, rows, spec, batch_size, max_length)

    def prepare_head(
        self, subject: CompressionSubject, needs_labels: bool, calibration: CalibrationSet | None
    ) -> str | None:
        if subject.head != "untrained":
            return None
        if needs_labels and calibration is not None:
            from tuneyard.task_types.sequence_classification.calibration import fit_linear_probe

            probe = fit_linear_probe(subject.model, calibration)
            subject.head = "linear_probe"
            return f"the base has no trained head: fitted {probe} as a linear probe on the calibration data."
        return "the base has no trained head: the classifier is randomly initialised (fine-tune it)."


TASK_TYPE = TaskType(
    name=data.NAME,
    summary="text or text pairs to a class or a score (GLUE, topic labels)",
    hub_task="text-classification",
    data=TextClassificationData(),
    model=TextClassifierModel(),
    training=ClassifierTraining(),
    evaluation=ClassifierEvaluation(),
    compression=ClassifierCompression(),
)
