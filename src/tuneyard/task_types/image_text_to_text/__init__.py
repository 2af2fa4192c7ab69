"""``image_text_to_text``: vision-language chat (SmolVLM / Idefics3) on rows of images and messages.

Rows are conversations whose user turns hold images (``data``); the model is an
``AutoModelForImageTextToText`` whose processor renders the chat template and turns images
into pixels (``model``), the same way in every verb (``inputs``, ``preprocess``:
``--image-preprocess processor`` or ``llamacpp``); training is TRL's ``SFTTrainer`` with the
loss on the answer only (``training``); LoRA adapts the text tower's blocks
(``--lora-layers``), optionally the vision tower's (``--lora-vision-layers``) and the
connector (``--train-connector``); eval generates answers from the images and grades them
as a causal LM's are graded (``generation``, ``evaluation``). ``assembly`` builds a
SmolVLM-shaped model around a text decoder. This module puts them into the roles.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.task_types.base import (
    AdaptedTower,
    DataRole,
    EvalResult,
    EvaluationRole,
    GenerationRole,
    LoadSettings,
    LoraScope,
    ProgressCallback,
    TaskType,
    TrainingRole,
    TrainingSettings,
)
from tuneyard.task_types.chat import ChatModel
from tuneyard.task_types.image_text_to_text import data, model
from tuneyard.task_types.image_text_to_text.options import ImageTextOptions

if TYPE_CHECKING:
    import torch
    from datasets import Dataset

    from tuneyard.components.distillation import Teacher
    from tuneyard.data.loading import TaskData
    from tuneyard.data.options import ColumnOptions
    from tuneyard.data.tasks import TaskSpec
    from tuneyard.models.checkpoint import StartingCheckpoint


def capped(options: Any, task_options: Any) -> Any:
    """Decoding ``options`` stopped at the model's recorded ``--max-answer-tokens``, if it has one."""
    limit = (task_options or ImageTextOptions()).max_answer_tokens
    if limit is None or options.max_new_tokens <= limit:
        return options
    return options.model_copy(update={"max_new_tokens": limit})


def preprocess_of(task_options: Any) -> str:
    """The ``--image-preprocess`` a run was fine-tuned with (the default for a model from elsewhere)."""
    return (task_options or ImageTextOptions()).image_preprocess


class ImageChatData(DataRole):
    """Image-chat rows, image tables with chat columns or labels, imagefolders (see :mod:`.data`)."""

    def recognize(self, column_names: list[str], columns: ColumnOptions) -> int:
        return data.recognizes(column_names, columns)

    def load_folder(
        self, folder: Path, columns: ColumnOptions, require_labels: bool
    ) -> tuple[TaskSpec, dict[str, Dataset]]:
        return data.load_folder(folder, columns)

    def check_lengths(self, task_data: TaskData, processor: Any, settings: TrainingSettings) -> list[str]:
        from tuneyard.errors import ConfigError
        from tuneyard.task_types.image_text_to_text.training import check_lengths

        if settings.packing:
            raise ConfigError(
                "--packing does not apply to image-chat rows: a packed sequence would mix rows' images.",
                "Leave out --packing.",
            )
        options = settings.task_options or ImageTextOptions()
        return check_lengths(task_data, processor, settings.max_length, options)

    def fitting_max_length(
        self, task_data: TaskData, processor: Any, checkpoint: StartingCheckpoint
    ) -> tuple[int, list[str]] | None:
        from tuneyard.task_types.image_text_to_text.preprocess import PREPROCESSES
        from tuneyard.task_types.image_text_to_text.training import longest_row

        # The run's --image-preprocess is not known here; a length that fits every choice refuses nothing.
        longest = max(longest_row(task_data, processor, preprocess) for preprocess in PREPROCESSES)
        return longest, [
            f"note: --max-length {longest}, the longest train row's tokens with its image tokens."
        ]


class VisionLanguageModel(ChatModel):
    """``AutoModelForImageTextToText`` with its processor."""

    architecture_mapping = model.MAPPING

    def load_tokenizer(self, checkpoint: StartingCheckpoint, spec: TaskSpec) -> Any:
        model.check_image_text_model(checkpoint.model_type, checkpoint.arch, checkpoint.source)
        return model.with_chat_template(model.load_processor(checkpoint.source), spec, checkpoint.source)

    def load(
        self,
        checkpoint: StartingCheckpoint,
        spec: TaskSpec,
        reset_head: bool,
        seed: int,
        settings: LoadSettings = LoadSettings(),
    ) -> Any:
        return model.load_model(checkpoint, seed, settings)

    def load_for_eval(self, folder: Path, device: torch.device) -> tuple[Any, Any]:
        return model.load_for_eval(folder, device)

    def load_adapter_base(self, base: Path | str, adapter: Path) -> Any:
        return model.load_adapter_base(base)

    def load_processor(self, folder: Path) -> Any:
        return model.load_processor(folder)

    def lora_scope(self, vlm: Any, task_options: Any) -> LoraScope | None:
        options = task_options or ImageTextOptions()
        text, vision, connector = model.lora_towers(vlm)
        layers = options.lora_vision_layers
        others = (AdaptedTower(vision, layers, "--lora-vision-layers"),) if layers else ()
        return LoraScope(main=text, others=others, trained=(connector,) if options.train_connector else ())

    def probe_inputs(self, processor: Any) -> dict[str, Any]:
        from tuneyard.task_types.image_text_to_text.inputs import probe_inputs

        return probe_inputs(processor)

    def output_space(self, vlm: Any) -> str:
        return f"a vocabulary of {vlm.config.get_text_config().vocab_size} tokens"


class ImageChatTraining(TrainingRole):
    """TRL's SFTTrainer, batches built by the task type's collator (see :mod:`.training`)."""

    def arguments_class(self) -> type:
        from trl import SFTConfig

        return SFTConfig

    def trainer_settings(self, settings: TrainingSettings) -> dict[str, Any]:
        # The collator builds every batch from the raw rows, so TRL must keep their columns
        # and leave its own tokenization out; rows are never cut (check_lengths refuses long ones).
        return {
            "max_length": None,
            "packing": False,
            "remove_unused_columns": False,
            "dataset_kwargs": {"skip_prepare_dataset": True},
        }

    def build_trainer(
        self,
        vlm: Any,
        arguments: Any,
        task_data: TaskData,
        processor: Any,
        settings: TrainingSettings,
        callbacks: list[Any],
        teacher: Teacher | None = None,
    ) -> Any:
        from tuneyard.task_types.image_text_to_text.training import build_trainer

        preprocess = preprocess_of(settings.task_options)
        return build_trainer(vlm, arguments, task_data, processor, callbacks, preprocess)

    def metric_names(self, spec: TaskSpec) -> list[str]:
        from tuneyard.task_types.causal_lm import TRAINING_METRICS

        return list(TRAINING_METRICS)


class ImageAnswersEvaluation(EvaluationRole):
    """Generate each answer from its images and grade it (``answers``: an ``AnswerOptions``)."""

    def evaluate(
        self,
        vlm: Any,
        processor: Any,
        dataset: Dataset,
        spec: TaskSpec,
        split: str,
        batch_size: int,
        max_length: int | None,
        progress: ProgressCallback | None = None,
        answers: Any = None,
        task_options: Any = None,
    ) -> EvalResult:
        from tuneyard.task_types.causal_lm.options import AnswerOptions
        from tuneyard.task_types.image_text_to_text.evaluation import evaluate_generations

        model.with_chat_template(processor, spec, "the model")
        options = capped(answers or AnswerOptions(), task_options)
        preprocess = preprocess_of(task_options)
        return evaluate_generations(
            vlm, processor, dataset, spec, split, batch_size, options, preprocess, progress
        )


class ImageChatGeneration(GenerationRole):
    """Prompts through the processor's chat template, answers decoded by ``generate`` with the images."""

    def has_prompts(self, spec: TaskSpec) -> bool:
        return True

    def prepare_tokenizer(self, processor: Any, spec: TaskSpec | None, source: str) -> Any:
        return model.with_chat_template(processor, spec, source)

    def render_prompts(self, processor: Any, rows: Dataset) -> list[str]:
        from tuneyard.task_types.image_text_to_text.inputs import prompt_texts

        return prompt_texts(processor, rows)

    def token_sequences(self, processor: Any, rows: Dataset, spec: TaskSpec) -> list[list[int]]:
        from tuneyard.task_types.image_text_to_text.inputs import training_inputs

        sequences = []
        for index in range(len(rows)):
            inputs = training_inputs(processor, [rows[index]], preprocess_of(None))
            sequences.append(inputs["input_ids"][0][inputs["attention_mask"][0] == 1].tolist())
        return sequences

    def generate(
        self,
        vlm: Any,
        processor: Any,
        rows: Dataset,
        options: Any,
        batch_size: int,
        progress: ProgressCallback | None = None,
        task_options: Any = None,
    ) -> Any:
        from tuneyard.task_types.image_text_to_text.generation import generate_answers

        preprocess = preprocess_of(task_options)
        return generate_answers(
            vlm, processor, rows, capped(options, task_options), batch_size, preprocess, progress
        )

    def write_predictions(self, folder: Path, generations: Any) -> str:
        from tuneyard.task_types.causal_lm.generation import write_predictions

        return write_predictions(folder, generations)

    def prompt_images(self, processor: Any, rows: Dataset) -> tuple[str, list[list[bytes]]] | None:
        return processor.image_token, data.image_files(rows)

    def image_as_seen(self, processor: Any, image: Any, preprocess: str) -> Any:
        from tuneyard.task_types.image_text_to_text.preprocess import seen_image

        return seen_image(processor, image, preprocess)


TASK_TYPE = TaskType(
    name=data.NAME,
    summary="images + chat rows to generated answers (SmolVLM / Idefics3)",
    hub_task="image-text-to-text",
    data=ImageChatData(),
    model=VisionLanguageModel(),
    training=ImageChatTraining(),
    evaluation=ImageAnswersEvaluation(),
    generation=ImageChatGeneration(),
    options=ImageTextOptions,
)
