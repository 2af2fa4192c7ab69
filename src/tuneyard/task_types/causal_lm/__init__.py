"""``causal_lm``: instruction tuning of decoder language models on chat rows.

Rows are conversations: a prompt (system, user and earlier turns) and the assistant's
last answer (``data``); the model is an ``AutoModelForCausalLM`` whose tokenizer formats
rows through its chat template (``model``); training is TRL's ``SFTTrainer`` with the
loss on every assistant turn's tokens only, reporting loss, perplexity and next-token accuracy
on the validation split (``training``); eval generates answers (``generation``),
grades them and scores the references' perplexity (``evaluation``, ``scoring``).
This module puts them into the task type's roles.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.task_types.base import (
    CompressionRole,
    CompressionSubject,
    DataRole,
    EvalResult,
    EvaluationRole,
    GenerationRole,
    LoadSettings,
    ProgressCallback,
    TaskType,
    TrainingRole,
    TrainingSettings,
)
from tuneyard.task_types.causal_lm import data, model
from tuneyard.task_types.chat import ChatModel

if TYPE_CHECKING:
    import torch
    from datasets import Dataset

    from tuneyard.components.calibration import Batch
    from tuneyard.components.distillation import Teacher
    from tuneyard.data.loading import TaskData
    from tuneyard.data.options import ColumnOptions
    from tuneyard.data.tasks import TaskSpec
    from tuneyard.models.checkpoint import StartingCheckpoint

# What an evaluation during training reports: TRL's answer-token loss, accuracy and entropy, plus perplexity.
TRAINING_METRICS = ["loss", "perplexity", "mean_token_accuracy", "entropy"]


class ChatData(DataRole):
    """Conversations in any of the shapes the field writes them (see :mod:`.data`), or plain text."""

    def recognize(self, column_names: list[str], columns: ColumnOptions) -> int:
        # Below a text column's 2: a folder with both reads as classification unless told.
        return 1 if data.recognizes(column_names, columns) else 0

    def load_folder(
        self, folder: Path, columns: ColumnOptions, require_labels: bool
    ) -> tuple[TaskSpec, dict[str, Dataset]]:
        return data.load_folder(folder, columns)

    def check_lengths(self, task_data: TaskData, tokenizer: Any, settings: TrainingSettings) -> list[str]:
        from tuneyard.task_types.causal_lm.training import check_lengths

        return check_lengths(task_data, tokenizer, settings.max_length)

    def fitting_max_length(
        self, task_data: TaskData, tokenizer: Any, checkpoint: StartingCheckpoint
    ) -> tuple[int, list[str]] | None:
        from tuneyard.task_types.causal_lm.training import fitting_max_length

        return fitting_max_length(task_data, tokenizer, checkpoint)


class DecoderModel(ChatModel):
    """``AutoModelForCausalLM`` with its chat-formatting tokenizer."""

    architecture_mapping = "MODEL_FOR_CAUSAL_LM_MAPPING_NAMES"

    def load_tokenizer(self, checkpoint: StartingCheckpoint, spec: TaskSpec) -> Any:
        model.check_decoder(checkpoint)
        return model.load_tokenizer(checkpoint.source, spec)

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
        return model.load_adapter_base(base, adapter)


class InstructionTraining(TrainingRole):
    """TRL's SFTTrainer; with a teacher, also its token-level KL on the learned tokens."""

    distills = True

    def arguments_class(self) -> type:
        from trl import SFTConfig

        return SFTConfig

    def trainer_settings(self, settings: TrainingSettings) -> dict[str, Any]:
        # SFTConfig's own default for truncation (1024) would differ from what the options
        # say (its gradient checkpointing default gives way to tuneyard's activation_checkpointing,
        # set by --gradient-checkpointing); validation rows are never packed, so validation loss
        # means the same with and without --packing. Chat rows come with their own labels (the
        # assistant turns, training.learned_columns), which TRL keeps; plain text is learned whole.
        return {
            "max_length": settings.max_length,
            "packing": settings.packing,
            "eval_packing": False,
        }

    def build_trainer(
        self,
        decoder: Any,
        arguments: Any,
        task_data: TaskData,
        tokenizer: Any,
        settings: TrainingSettings,
        callbacks: list[Any],
        teacher: Teacher | None = None,
    ) -> Any:
        from tuneyard.task_types.causal_lm.training import build_trainer

        return build_trainer(decoder, arguments, task_data, tokenizer, callbacks, teacher)

    def metric_names(self, spec: TaskSpec) -> list[str]:
        return list(TRAINING_METRICS)


class GeneratedAnswersEvaluation(EvaluationRole):
    """Generate each answer, grade it (``answers``: an ``AnswerOptions``) and score the references.

    Plain text rows are scored by their perplexity alone.
    """

    def evaluate(
        self,
        decoder: Any,
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
        from tuneyard.components.throughput import max_length_for
        from tuneyard.task_types.causal_lm.evaluation import evaluate_generations, evaluate_text
        from tuneyard.task_types.causal_lm.options import AnswerOptions

        length = max_length_for(decoder, tokenizer, max_length)
        if spec.problem == data.LANGUAGE_MODELING:
            return evaluate_text(decoder, tokenizer, dataset, spec, split, batch_size, length, progress)
        model.with_chat_template(tokenizer, spec, "the model")
        options = answers or AnswerOptions()
        return evaluate_generations(
            decoder, tokenizer, dataset, spec, split, batch_size, length, options, progress
        )


class LanguageModelCompression(CompressionRole):
    """Conversations or plain text as calibration, every token a target; perplexity before and after."""

    held_out_metrics = ("perplexity",)

    def load_for_compression(self, model_id: str, spec: TaskSpec | None, seed: int) -> CompressionSubject:
        return model.load_for_compression(model_id, spec)

    def calibration_batches(
        self, tokenizer: Any, rows: Dataset, spec: TaskSpec, batch_size: int, max_length: int
    ) -> list[Batch]:
        from tuneyard.task_types.causal_lm.calibration import language_model_batches

        return language_model_batches(tokenizer, rows, spec, batch_size, max_length)

    def held_out_scores(self, decoder: Any, batches: list[Batch]) -> dict[str, float]:
        from tuneyard.task_types.causal_lm.calibration import perplexity

        return {"perplexity": perplexity(decoder, batches)}


class ChatGeneration(GenerationRole):
    """Prompts rendered through the chat template, answers decoded by ``generate``."""

    def has_prompts(self, spec: TaskSpec) -> bool:
        return spec.problem != data.LANGUAGE_MODELING

    def prepare_tokenizer(self, tokenizer: Any, spec: TaskSpec | None, source: str) -> Any:
        return model.with_chat_template(tokenizer, spec, source)

    def render_prompts(self, tokenizer: Any, rows: Dataset) -> list[str]:
        from tuneyard.task_types.causal_lm.generation import render_prompts

        return render_prompts(tokenizer, rows)

    def token_sequences(self, tokenizer: Any, rows: Dataset, spec: TaskSpec) -> list[list[int]]:
        from tuneyard.task_types.causal_lm.calibration import token_sequences

        return token_sequences(tokenizer, rows, spec)

    def generate(
        self,
        decoder: Any,
        tokenizer: Any,
        rows: Dataset,
        options: Any,
        batch_size: int,
        progress: ProgressCallback | None = None,
        task_options: Any = None,
    ) -> Any:
        from tuneyard.task_types.causal_lm.generation import generate_answers

        return generate_answers(decoder, tokenizer, rows, options, batch_size, progress)

    def write_predictions(self, folder: Path, generations: Any) -> str:
        from tuneyard.task_types.causal_lm.generation import write_predictions

        return write_predictions(folder, generations)


TASK_TYPE = TaskType(
    name=data.NAME,
    summary="chat / instruction rows to generated answers (SmolLM2, Llama, GPT-2)",
    hub_task="text-generation",
    data=ChatData(),
    model=DecoderModel(),
    training=InstructionTraining(),
    evaluation=GeneratedAnswersEvaluation(),
    compression=LanguageModelCompression(),
    generation=ChatGeneration(),
)
