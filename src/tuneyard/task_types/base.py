"""What a task type provides: the one interface finetune, eval, eval-grid and compress call.

A task type owns everything that depends on the kind of problem: which columns its
data has and how rows are formatted, the model class and tokenizer or processor, how
rows become a batch, the PEFT task type, the metrics training reports, the evaluation
loop and the files it writes, and the calibration batches compression reads. The verbs
hold no task-specific code: they load a dataset, look up its ``spec.task_type`` in
:data:`tuneyard.task_types.TASK_TYPES` and call these methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    import torch
    from datasets import Dataset

    from tuneyard.compress.calibration import CalibrationSet
    from tuneyard.compress.method import CompressionMethod
    from tuneyard.data.loading import TaskData
    from tuneyard.data.options import ColumnOptions
    from tuneyard.data.tasks import TaskSpec
    from tuneyard.components.throughput import Throughput
    from tuneyard.components.distillation import Teacher
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.models.checkpoint import StartingCheckpoint

# Called after every batch with the number of examples just scored.
ProgressCallback = Callable[[int], None]


class EvalResult(Protocol):
    """What a task type's evaluation returns: scores, speed, and the files that show them."""

    metrics: dict[str, float]
    throughput: Throughput

    @property
    def main_metric(self) -> str:
        """The metric a grid cell or a summary leads with."""

    def write_files(self, folder: Path, model: str) -> list[str]:
        """Write the evaluation's files into ``folder``; returns their names."""


@dataclass
class CompressionSubject:
    """The model ``compress`` factorises, its tokenizer, and the state of its task head."""

    model: Any
    tokenizer: Any
    head: str  # "trained", "untrained", "none" or how a head was fitted ("linear_probe")


class TaskType(ABC):
    """One kind of problem (sequence classification, causal LM, ...) end to end."""

    name: ClassVar[str]
    summary: ClassVar[str]
    # PEFT's ``TaskType`` for LoRA adapters of this kind of model, e.g. "SEQ_CLS".
    peft_task_type: ClassVar[str]
    # What compress measures on held-out rows before and after factorising (held_out_scores).
    held_out_metrics: ClassVar[tuple[str, ...]] = ()
    # Whether build_trainer takes a teacher (``finetune --distill-from``).
    distills: ClassVar[bool] = False

    # -- data ------------------------------------------------------------------

    @abstractmethod
    def recognizes(self, column_names: list[str], columns: ColumnOptions) -> bool:
        """Whether a data file with these columns holds this task type's rows (``--task-type`` unset)."""

    @abstractmethod
    def load_named(self, spec: TaskSpec) -> dict[str, Dataset]:
        """A named task's splits (from the hub or its cache) in this task type's columns."""

    @abstractmethod
    def load_folder(
        self, folder: Path, columns: ColumnOptions, require_labels: bool
    ) -> tuple[TaskSpec, dict[str, Dataset]]:
        """A local folder's split files in this task type's columns, and the spec they make."""

    @abstractmethod
    def check_trainable(self, data: TaskData) -> None:
        """Refuse data that cannot train a model (a single class, no targets)."""

    # -- training --------------------------------------------------------------

    @abstractmethod
    def load_tokenizer(self, parent: StartingCheckpoint, spec: TaskSpec) -> Any:
        """The checkpoint's tokenizer (or processor), ready to batch and format ``spec``'s rows."""

    @abstractmethod
    def load_model(self, parent: StartingCheckpoint, spec: TaskSpec, reset_head: bool, seed: int) -> Any:
        """The checkpoint as the model class this task trains (a fresh head seeded by ``seed``)."""

    def arguments_class(self) -> type:
        """The Trainer's arguments class: ``TrainingArguments`` or a subclass (TRL's ``SFTConfig``)."""
        from transformers import TrainingArguments

        return TrainingArguments

    @abstractmethod
    def build_trainer(
        self,
        model: Any,
        arguments: Any,
        data: TaskData,
        tokenizer: Any,
        max_length: int,
        callbacks: list[Any],
        teacher: Teacher | None = None,
    ) -> Any:
        """The Trainer for ``model`` on ``data``'s train split, evaluating on its validation split.

        Its ``eval_*`` metrics are what ``--metric-for-best`` chooses from (see
        :meth:`metric_names`); tuneyard's ``callbacks`` go in as given. With a ``teacher``
        the training loss also matches its logits (:mod:`tuneyard.train.distillation`).
        """

    @abstractmethod
    def metric_names(self, spec: TaskSpec) -> list[str]:
        """Every metric an evaluation reports for ``spec`` (what ``--metric-for-best`` may name)."""

    def trainer_settings(self, options: FinetuneOptions) -> dict[str, Any]:
        """``TrainingArguments`` fields this kind of training needs beyond tuneyard's own."""
        return {}

    def check_lengths(self, data: TaskData, tokenizer: Any, max_length: int) -> list[str]:
        """Refuse rows that cannot train within ``max_length`` tokens; notes for the user on what is cut."""
        return []

    @abstractmethod
    def modules_to_save(self, model: Any) -> list[str]:
        """Modules a LoRA run trains and saves in full next to the adapters (a task head)."""

    @abstractmethod
    def load_adapter_base(self, base: Path | str, adapter: Path) -> Any:
        """The base model a saved LoRA ``adapter`` of this task type goes onto (``tuneyard.load``)."""

    # -- evaluation ------------------------------------------------------------

    @abstractmethod
    def load_for_eval(self, folder: Path, device: torch.device) -> tuple[Any, Any]:
        """Model (on ``device``) and tokenizer of a model folder; refuses a model this task cannot score."""

    @abstractmethod
    def evaluate(
        self,
        model: Any,
        tokenizer: Any,
        dataset: Dataset,
        spec: TaskSpec,
        split: str,
        batch_size: int,
        max_length: int | None,
        progress: ProgressCallback | None = None,
        answers: Any = None,
    ) -> EvalResult:
        """Score ``model`` on one split (``answers``: how a generative task type decodes and grades)."""

    # -- compression -----------------------------------------------------------

    @abstractmethod
    def load_for_compression(self, model_id: str, spec: TaskSpec | None, seed: int) -> CompressionSubject:
        """The model to compress; with ``spec``, shaped for that task (a head sized for its labels)."""

    @abstractmethod
    def calibration_batches(
        self, tokenizer: Any, rows: Dataset, spec: TaskSpec, batch_size: int, max_length: int
    ) -> list[dict[str, torch.Tensor]]:
        """Calibration rows as model inputs, with ``labels`` when the rows have targets."""

    def prepare_head(
        self, subject: CompressionSubject, method: CompressionMethod, calibration: CalibrationSet | None
    ) -> str | None:
        """Make the head fit for ``method``'s statistics; returns a note for the user, if any."""
        return None

    def held_out_scores(self, model: Any, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """:attr:`held_out_metrics` of ``model`` on held-out :meth:`calibration_batches`.

        None by default: a classifier's compression is judged by ``tuneyard eval``.
        """
        return {}
