"""What a task type is: five small roles that finetune, eval, compress, merge and generate call.

A task type owns everything that depends on the kind of problem, split by who asks:

- :class:`DataRole`: which columns its rows have, how a folder or a named task reads;
- :class:`ModelRole`: the model class and its tokenizer or processor, the head, a probe
  input for merge's check, what its outputs range over;
- :class:`TrainingRole`: the Trainer, its arguments and metrics;
- :class:`EvaluationRole`: the evaluation loop and its files;
- :class:`CompressionRole`: calibration batches and what compress measures.

:class:`TaskType` is the record that puts them together under a name; a chat model
adds :class:`GenerationRole`. Shared implementations of these roles live in
:mod:`tuneyard.task_types.classifier` ("a classifier over some input") and
:mod:`tuneyard.task_types.chat` ("a chat model over some input"), so a new task type
writes only what differs. The value types here belong to the interface: nothing in it
names a verb's own types, so this layer never imports a verb.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch
    from datasets import Dataset
    from pydantic import BaseModel

    from tuneyard.components.calibration import Batch, CalibrationSet
    from tuneyard.components.distillation import Teacher
    from tuneyard.components.throughput import Throughput
    from tuneyard.data.loading import TaskData
    from tuneyard.data.options import ColumnOptions
    from tuneyard.data.tasks import TaskSpec
    from tuneyard.models.checkpoint import StartingCheckpoint

# Called after every batch with the number of examples just scored.
ProgressCallback = Callable[[int], None]
# A text input for merge's check (source and merged model must agree on its logits).
PROBE_TEXT = "The quick brown fox jumps over the lazy dog, then asks which Debian section it is in."


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


@dataclass(frozen=True)
class TrainingSettings:
    """What the fine-tuning options tell a task type's Trainer (the interface's own type).

    ``task_options``: the run's values of the task type's own options model
    (:attr:`TaskType.options`), validated; None when it declares none.
    """

    max_length: int
    packing: bool = False
    task_options: Any = None


@dataclass(frozen=True)
class LoadSettings:
    """How finetune wants the starting model's weights (the interface's own type).

    ``dtype``: a torch dtype's name (``float32``, ``bfloat16``, ``float16``), resolved
    from ``--dtype``; ``quantization``: a transformers quantization config the weights
    load through (bitsandbytes' 4-bit for ``--strategy qlora``), or None.
    """

    dtype: str = "float32"
    quantization: Any = None

    def pretrained_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``from_pretrained`` that load the weights so."""
        from tuneyard.models.dtypes import torch_dtype

        kwargs: dict[str, Any] = {"dtype": torch_dtype(self.dtype)}
        if self.quantization is not None:
            kwargs["quantization_config"] = self.quantization
        return kwargs


@dataclass(frozen=True)
class AdaptedTower:
    """A further tower LoRA adapts: its module path, the blocks chosen there (``"0,1"``, ``"2-5"``,
    ``"all"``) and the option that chose them (named in errors)."""

    path: str
    layers: str
    option: str


@dataclass(frozen=True)
class LoraScope:
    """Where LoRA goes in a model of several towers (a vision-language model's text and vision towers).

    ``main``: the tower whose blocks ``--lora-layers`` numbers (a module path, e.g.
    ``model.text_model``); ``others``: further towers adapted; ``trained``: modules that
    train in full beside the task head (a connector between towers).
    """

    main: str
    others: tuple[AdaptedTower, ...] = ()
    trained: tuple[str, ...] = ()


class DataRole(ABC):
    """Rows: which folders this task type reads, and what it refuses before training."""

    @abstractmethod
    def recognize(self, column_names: list[str], columns: ColumnOptions) -> int:
        """How well a split file with these columns fits this task type: 0 = not at all.

        The task type of a ``--data`` folder without ``--task-type`` is the one scoring
        highest; a tie between two is an error that names ``--task-type``.
        """

    def named_tasks(self) -> dict[str, TaskSpec]:
        """The tasks ``--task NAME`` can name that this task type loads (GLUE's, for classification)."""
        return {}

    def load_named(self, spec: TaskSpec) -> dict[str, Dataset]:
        """A named task's splits (from the hub or its cache) in this task type's columns."""
        from tuneyard.errors import DataError

        raise DataError(
            f"task {spec.name!r} is not a {spec.task_type} task.", "Give a folder with --data DIR."
        )

    @abstractmethod
    def load_folder(
        self, folder: Path, columns: ColumnOptions, require_labels: bool
    ) -> tuple[TaskSpec, dict[str, Dataset]]:
        """A local folder's split files in this task type's columns, and the spec they make."""

    def check_trainable(self, data: TaskData) -> None:
        """Refuse data that cannot train a model (a single class, no targets); nothing by default."""

    def check_lengths(self, data: TaskData, tokenizer: Any, settings: TrainingSettings) -> list[str]:
        """Refuse rows that cannot train with ``settings`` (too long for its ``max_length``, at odds
        with its task options), before a run folder exists; notes for the user on what is cut."""
        return []

    def fitting_max_length(
        self, data: TaskData, tokenizer: Any, checkpoint: StartingCheckpoint
    ) -> tuple[int, list[str]] | None:
        """A ``max_length`` fitted to the data when the user gave none, with a note; None: the default."""
        return None


class ModelRole(ABC):
    """The model class, its tokenizer or processor, and the parts of it other verbs ask about."""

    # The transformers auto class's model mapping (``MODEL_FOR_CAUSAL_LM_MAPPING_NAMES``)
    # whose architectures this task type claims (a folder's task type when none is recorded).
    architecture_mapping: str = ""
    # PEFT's ``TaskType`` for LoRA adapters of this kind of model, e.g. "SEQ_CLS".
    peft_task_type: str = ""

    def claims(self, architecture: str) -> bool:
        """Whether a ``config.json`` ``architectures`` entry is one of this task type's model classes."""
        import transformers.models.auto.modeling_auto as auto

        mapping: dict[str, Any] = getattr(auto, self.architecture_mapping, {})
        return any(
            architecture in (names if isinstance(names, tuple) else (names,)) for names in mapping.values()
        )

    def builds(self, model_type: str) -> bool:
        """Whether this task type's auto class builds a model of a config's ``model_type`` (which
        task type a bare encoder's adapter is, when its PEFT tag names several)."""
        import transformers.models.auto.modeling_auto as auto

        return model_type in getattr(auto, self.architecture_mapping, {})

    @abstractmethod
    def load_tokenizer(self, checkpoint: StartingCheckpoint, spec: TaskSpec) -> Any:
        """The checkpoint's tokenizer (or processor), ready to batch and format ``spec``'s rows."""

    @abstractmethod
    def load(
        self,
        checkpoint: StartingCheckpoint,
        spec: TaskSpec,
        reset_head: bool,
        seed: int,
        settings: LoadSettings = LoadSettings(),
    ) -> Any:
        """The checkpoint as the model class this task trains (a fresh head seeded by ``seed``),
        its weights loaded as ``settings`` say (dtype, quantization)."""

    @abstractmethod
    def load_for_eval(self, folder: Path, device: torch.device) -> tuple[Any, Any]:
        """Model (on ``device``) and tokenizer of a model folder; refuses a model this task cannot score."""

    @abstractmethod
    def load_adapter_base(self, base: Path | str, adapter: Path) -> Any:
        """The base model a saved LoRA ``adapter`` of this task type goes onto (``tuneyard.load``)."""

    def load_processor(self, folder: Path) -> Any:
        """What turns raw inputs into model inputs for a saved model folder: its tokenizer by default
        (an audio or vision model: its feature extractor or processor). Merge saves it beside the weights.
        """
        from tuneyard.models.loading import load_tokenizer

        return load_tokenizer(folder)

    def lora_scope(self, model: Any, task_options: Any) -> LoraScope | None:
        """Where LoRA goes when the model has several towers; None (the default): its one stack of
        blocks (``task_options``: the run's values of the task type's options model, or None)."""
        return None

    def head_modules(self, model: Any) -> list[str]:
        """Top-level modules that are the task head: ``frozen`` trains them, LoRA saves them whole."""
        return []

    @abstractmethod
    def probe_inputs(self, tokenizer: Any) -> dict[str, Any]:
        """One small batch of model inputs: merge compares its outputs before and after."""

    @abstractmethod
    def output_space(self, model: Any) -> str:
        """What the model's logits range over, in words (a teacher must match its student's)."""


class TrainingRole(ABC):
    """The Trainer: batching, loss, the metrics training reports."""

    # Whether build_trainer takes a teacher (``finetune --distill-from``).
    distills: bool = False

    def arguments_class(self) -> type:
        """The Trainer's arguments class: ``TrainingArguments`` or a subclass (TRL's ``SFTConfig``)."""
        from transformers import TrainingArguments

        return TrainingArguments

    def trainer_settings(self, settings: TrainingSettings) -> dict[str, Any]:
        """``TrainingArguments`` fields this kind of training needs beyond tuneyard's own."""
        return {}

    @abstractmethod
    def build_trainer(
        self,
        model: Any,
        arguments: Any,
        data: TaskData,
        tokenizer: Any,
        settings: TrainingSettings,
        callbacks: list[Any],
        teacher: Teacher | None = None,
    ) -> Any:
        """The Trainer for ``model`` on ``data``'s train split, evaluating on its validation split.

        Its ``eval_*`` metrics are what ``--metric-for-best`` chooses from (see
        :meth:`metric_names`); tuneyard's ``callbacks`` go in as given. With a ``teacher``
        the training loss also matches its logits (:mod:`tuneyard.components.distillation`).
        """

    @abstractmethod
    def metric_names(self, spec: TaskSpec) -> list[str]:
        """Every metric an evaluation reports for ``spec`` (what ``--metric-for-best`` may name)."""


class EvaluationRole(ABC):
    """Scoring a model on one split."""

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
        task_options: Any = None,
    ) -> EvalResult:
        """Score ``model`` on one split.

        ``answers``: how a generative task type decodes and grades; ``task_options``: the
        task type's own options the model was fine-tuned with (its options model, or None).
        """


class CompressionRole(ABC):
    """What ``compress`` needs: the model shaped for its task, calibration batches, held-out scores."""

    # What compress measures on held-out rows before and after factorising (held_out_scores).
    held_out_metrics: tuple[str, ...] = ()

    @abstractmethod
    def load_for_compression(self, model_id: str, spec: TaskSpec | None, seed: int) -> CompressionSubject:
        """The model to compress; with ``spec``, shaped for that task (a head sized for its labels)."""

    @abstractmethod
    def calibration_batches(
        self, tokenizer: Any, rows: Dataset, spec: TaskSpec, batch_size: int, max_length: int
    ) -> list[Batch]:
        """Calibration rows as model inputs, with ``labels`` when the rows have targets."""

    def prepare_head(
        self, subject: CompressionSubject, needs_labels: bool, calibration: CalibrationSet | None
    ) -> str | None:
        """Make the head fit for a method whose statistics ``needs_labels``; a note for the user, if any."""
        return None

    def held_out_scores(self, model: Any, batches: list[Batch]) -> dict[str, float]:
        """:attr:`held_out_metrics` of ``model`` on held-out :meth:`calibration_batches`.

        None by default: a classifier's compression is judged by ``tuneyard eval``.
        """
        return {}


class GenerationRole(ABC):
    """Answers generated for prompts (``tuneyard generate``; llama.cpp validation compares them)."""

    @abstractmethod
    def has_prompts(self, spec: TaskSpec) -> bool:
        """Whether ``spec``'s rows are prompts to answer (not plain text to model)."""

    @abstractmethod
    def prepare_tokenizer(self, tokenizer: Any, spec: TaskSpec | None, source: str) -> Any:
        """``tokenizer`` ready to render ``spec``'s prompts (a chat template); refuses one that is not."""

    @abstractmethod
    def render_prompts(self, tokenizer: Any, rows: Dataset) -> list[str]:
        """Each row's prompt as the model sees it, ready for the assistant's answer."""

    @abstractmethod
    def token_sequences(self, tokenizer: Any, rows: Dataset, spec: TaskSpec) -> list[list[int]]:
        """Each row's whole text (prompt and answer) as token ids."""

    @abstractmethod
    def generate(
        self,
        model: Any,
        tokenizer: Any,
        rows: Dataset,
        options: Any,
        batch_size: int,
        progress: ProgressCallback | None = None,
        task_options: Any = None,
    ) -> Any:
        """An answer for every row (``options``: decoding settings), with token counts and seconds;
        ``task_options``: the task type's own options the model was fine-tuned with, or None."""

    @abstractmethod
    def write_predictions(self, folder: Path, generations: Any) -> str:
        """Write the generations into ``folder``; returns the file's name."""

    def prompt_images(self, tokenizer: Any, rows: Dataset) -> tuple[str, list[list[bytes]]] | None:
        """For prompts that carry images: the marker that stands for an image in a rendered prompt, and
        each row's images as the encoded files they were read from (what a deployed runtime such as
        llama.cpp is given, to prepare as it does); None for text prompts."""
        return None

    def image_as_seen(self, processor: Any, image: Any, preprocess: str) -> Any | None:
        """``image`` (PIL) as this task type's model reads it once prepared the ``preprocess`` way: what a
        teacher labelling for the model is shown (``label --image-preprocess``); None (the default): the
        task type's models read no images."""
        return None


@dataclass(frozen=True)
class TaskType:
    """One kind of problem (sequence classification, causal LM, ...) end to end, by role."""

    name: str
    summary: str
    data: DataRole
    model: ModelRole
    training: TrainingRole
    evaluation: EvaluationRole
    compression: CompressionRole | None = None
    generation: GenerationRole | None = None
    # Its own fine-tuning options (a pydantic model): ``finetune`` offers each field as a flag
    # in a --help panel named after the task type, and hands the values to the training
    # role as ``TrainingSettings.task_options`` (YAML: ``task_options:``).
    options: type[BaseModel] | None = None
    # The Hugging Face Hub's task name (pipeline tag) for its models, written into model cards.
    hub_task: str = ""
