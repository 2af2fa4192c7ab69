"""``causal_lm``: instruction tuning of decoder language models on chat rows.

Rows are conversations: a prompt (system and user messages) and the assistant's
answer (``data``); the model is an ``AutoModelForCausalLM`` whose tokenizer formats
rows through its chat template (``model``); training is TRL's ``SFTTrainer`` with the
loss on the answer tokens only, reporting loss, perplexity and next-token accuracy
on the validation split (``training``); eval generates answers (``generation``),
grades them and scores the references' perplexity (``evaluation``, ``scoring``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import DataError
from tuneyard.task_types.base import CompressionSubject, EvalResult, ProgressCallback, TaskType
from tuneyard.task_types.causal_lm import data, model

if TYPE_CHECKING:
    import torch
    from datasets import Dataset

    from tuneyard.data.loading import TaskData
    from tuneyard.data.options import ColumnOptions
    from tuneyard.data.tasks import TaskSpec
    from tuneyard.components.distillation import Teacher
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.models.checkpoint import StartingCheckpoint

# What an evaluation during training reports: TRL's answer-token loss, accuracy and entropy, plus perplexity.
TRAINING_METRICS = ["loss", "perplexity", "mean_token_accuracy", "entropy"]


class CausalLM(TaskType):
    """A conversation's prompt in, the assistant's answer out, generated token by token."""

    name = "causal_lm"
    summary = "chat / instruction rows to generated answers (SmolLM2, Llama, Qwen2, GPT-2)"
    peft_task_type = "CAUSAL_LM"
    held_out_metrics = ("perplexity",)
    distills = True

    def recognizes(self, column_names: list[str], columns: ColumnOptions) -> bool:
        return data.recognizes(column_names, columns)

    def load_named(self, spec: TaskSpec) -> dict[str, Dataset]:
        raise DataError(f"task {spec.name!r} is not a chat task.", "Give chat data with --data DIR.")

    def load_folder(
        self, folder: Path, columns: ColumnOptions, require_labels: bool
    ) -> tuple[TaskSpec, dict[str, Dataset]]:
        return data.load_folder(folder, columns)

    def check_trainable(self, task_data: TaskData) -> None:
        """Every row has an answer by construction; nothing more to refuse before tokenizing."""

    def load_tokenizer(self, parent: StartingCheckpoint, spec: TaskSpec) -> Any:
        model.check_decoder(parent)
        return model.load_tokenizer(parent.source, spec)

    def load_model(self, parent: StartingCheckpoint, spec: TaskSpec, reset_head: bool, seed: int) -> Any:
        return model.load_model(parent, seed)

    def check_lengths(self, task_data: TaskData, tokenizer: Any, max_length: int) -> list[str]:
        from tuneyard.task_types.causal_lm.training import check_lengths

        return check_lengths(task_data, tokenizer, max_length)

    def arguments_class(self) -> type:
        from trl import SFTConfig

        return SFTConfig

    def trainer_settings(self, options: FinetuneOptions) -> dict[str, Any]:
        # SFTConfig's own defaults for these (gradient checkpointing on, truncation at 1024)
        # would differ from what the options say; validation rows are never packed, so
        # validation loss means the same with and without --packing. Completion-only loss
        # is TRL's choice by the rows' form: on for prompt-completion, off for plain text.
        return {
            "max_length": options.max_length,
            "packing": options.packing,
            "eval_packing": False,
            "completion_only_loss": None,
            "activation_checkpointing": False,
        }

    def build_trainer(
        self,
        decoder: Any,
        arguments: Any,
        task_data: TaskData,
        tokenizer: Any,
        max_length: int,
        callbacks: list[Any],
        teacher: Teacher | None = None,
    ) -> Any:
        """TRL's SFTTrainer; with a teacher, also its token-level KL on the learned tokens."""
        from tuneyard.task_types.causal_lm.training import build_trainer

        return build_trainer(decoder, arguments, task_data, tokenizer, callbacks, teacher)

    def metric_names(self, spec: TaskSpec) -> list[str]:
        return list(TRAINING_METRICS)

    def modules_to_save(self, decoder: Any) -> list[str]:
        """No head to train in full: LoRA adapters alone (the output layer is the pretrained one)."""
        return []

    def load_adapter_base(self, base: Path | str, adapter: Path) -> Any:
        return model.load_adapter_base(base, adapter)

    def load_for_eval(self, folder: Path, device: torch.device) -> tuple[Any, Any]:
        return model.load_for_eval(folder, device)

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
    ) -> EvalResult:
        """Generate each answer, grade it (``answers``: an ``AnswerOptions``) and score the references.

        Plain text rows are scored by their perplexity alone.
        """
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

    def load_for_compression(self, model_id: str, spec: TaskSpec | None, seed: int) -> CompressionSubject:
        return model.load_for_compression(model_id, spec)

    def calibration_batches(
        self, tokenizer: Any, rows: Dataset, spec: TaskSpec, batch_size: int, max_length: int
    ) -> list[dict[str, torch.Tensor]]:
        """Conversations or plain text, every token a next-token target (see :mod:`.calibration`)."""
        from tuneyard.task_types.causal_lm.calibration import language_model_batches

        return language_model_batches(tokenizer, rows, spec, batch_size, max_length)

    def held_out_scores(self, decoder: Any, batches: list[dict[str, torch.Tensor]]) -> dict[str, float]:
        """Perplexity of the held-out text."""
        from tuneyard.task_types.causal_lm.calibration import perplexity

        return {"perplexity": perplexity(decoder, batches)}


TASK_TYPE = CausalLM()
