"""``sequence_classification``: single texts and sentence pairs to a class (or a score, STS-B).

The task type every GLUE task and every local folder of ``text`` / ``label`` rows
has. Its parts live in the modules beside this one: ``data`` (columns and labels),
``encoding`` (tokenization), ``model`` (loading for training, eval and compression),
``metrics``, ``evaluation`` and ``eval_files`` (the eval loop and its files) and
``calibration`` (batches and a linear probe for compression).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import DataError
from tuneyard.task_types.base import CompressionSubject, ProgressCallback, TaskType
from tuneyard.task_types.sequence_classification import data, model

if TYPE_CHECKING:
    import torch
    from datasets import Dataset

    from tuneyard.compress.calibration import CalibrationSet
    from tuneyard.compress.method import CompressionMethod
    from tuneyard.data.loading import TaskData
    from tuneyard.data.options import ColumnOptions
    from tuneyard.data.tasks import TaskSpec
    from tuneyard.task_types.sequence_classification.evaluation import ClassificationResult
    from tuneyard.components.distillation import Teacher
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.models.checkpoint import StartingCheckpoint


class SequenceClassification(TaskType):
    """Text (or a pair of texts) in, one label (or one number) out."""

    name = "sequence_classification"
    summary = "text or text pairs to a class or a score (GLUE, topic labels)"
    peft_task_type = "SEQ_CLS"
    distills = True

    def recognizes(self, column_names: list[str], columns: ColumnOptions) -> bool:
        return columns.text_column in column_names

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

    def load_tokenizer(self, parent: StartingCheckpoint, spec: TaskSpec) -> Any:
        return model.load_tokenizer(parent)

    def load_model(self, parent: StartingCheckpoint, spec: TaskSpec, reset_head: bool, seed: int) -> Any:
        return model.load_model(parent, spec, reset_head, seed)

    def build_trainer(
        self,
        classifier: Any,
        arguments: Any,
        task_data: TaskData,
        tokenizer: Any,
        max_length: int,
        callbacks: list[Any],
        teacher: Teacher | None = None,
    ) -> Any:
        """The plain Trainer on tokenized rows, each batch padded to its longest row; a teacher distils."""
        from transformers import DataCollatorWithPadding, Trainer

        from tuneyard.task_types.sequence_classification.encoding import tokenize_task
        from tuneyard.task_types.sequence_classification.metrics import trainer_metrics
        from tuneyard.components.distillation import distilling_trainer_class
        from tuneyard.train.distributed import main_process_first

        with main_process_first():
            tokenized = tokenize_task(task_data, tokenizer, max_length)
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

    def trainer_settings(self, options: FinetuneOptions) -> dict[str, Any]:
        # Classification losses are per-example means; the token-count rescaling meant for
        # language modelling would multiply them (and the gradients) by the process count.
        return {"average_tokens_across_devices": False}

    def modules_to_save(self, classifier: Any) -> list[str]:
        from tuneyard.components.heads import head_module_names

        return head_module_names(classifier)

    def load_adapter_base(self, base: Path | str, adapter: Path) -> Any:
        return model.load_adapter_base(base, adapter)

    def load_for_eval(self, folder: Path, device: torch.device) -> tuple[Any, Any]:
        return model.load_for_eval(folder, device)

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
    ) -> ClassificationResult:
        """Classify the split and score it (``answers`` concerns generative task types only)."""
        from tuneyard.task_types.sequence_classification.evaluation import evaluate_classifier

        return evaluate_classifier(
            classifier, tokenizer, dataset, spec, split, batch_size, max_length, progress
        )

    def load_for_compression(self, model_id: str, spec: TaskSpec | None, seed: int) -> CompressionSubject:
        return model.load_for_compression(model_id, spec, seed)

    def calibration_batches(
        self, tokenizer: Any, rows: Dataset, spec: TaskSpec, batch_size: int, max_length: int
    ) -> list[dict[str, torch.Tensor]]:
        from tuneyard.task_types.sequence_classification.calibration import tokenized_batches

        return tokenized_batches(tokenizer, rows, spec, batch_size, max_length)

    def prepare_head(
        self, subject: CompressionSubject, method: CompressionMethod, calibration: CalibrationSet | None
    ) -> str | None:
        """Fit a linear probe where Fisher weights need a trained head; else say the head is random."""
        if subject.head != "untrained":
            return None
        if method.needs_labels and calibration is not None:
            from tuneyard.task_types.sequence_classification.calibration import fit_linear_probe

            probe = fit_linear_probe(subject.model, calibration)
            subject.head = "linear_probe"
            return f"the base has no trained head: fitted {probe} as a linear probe on the calibration data."
        return "the base has no trained head: the classifier is randomly initialised (fine-tune it)."


TASK_TYPE = SequenceClassification()
