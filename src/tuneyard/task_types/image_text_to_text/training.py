"""Supervised fine-tuning on image-chat rows: TRL's ``SFTTrainer`` with this task type's collator.

TRL's own vision collator calls the processor on the raw images, which would bypass
``--image-preprocess``; so the rows go to the trainer as they are (TRL's dataset
preparation skipped) and :class:`.inputs.ImageChatCollator` builds every batch: the
prompt with its images, the answer's tokens, labels on the answer only. TRL still
computes the loss, next-token accuracy and entropy; perplexity is added as for text.
A row longer than ``--max-length`` (its image tokens counted) is refused before any run
folder exists: cutting it would cut image tokens or the answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneyard.errors import DataError
from tuneyard.task_types.image_text_to_text.inputs import ImageChatCollator, answer_lengths, row_lengths

if TYPE_CHECKING:
    from tuneyard.data.loading import TaskData
    from tuneyard.task_types.image_text_to_text.options import ImageTextOptions

TRAINED_SPLITS = ("train", "validation")


def check_lengths(data: TaskData, processor: Any, max_length: int, options: ImageTextOptions) -> list[str]:
    """Refuse rows longer than ``max_length`` tokens (image tokens included), and answers longer than
    ``--max-answer-tokens`` (the deployment would cut them)."""
    for split in TRAINED_SPLITS:
        rows = data.split(split)
        lengths = row_lengths(processor, rows, options.image_preprocess)
        long = [row_id for row_id, length in zip(rows["id"], lengths, strict=True) if length > max_length]
        if long:
            shown = ", ".join(str(row_id) for row_id in long[:5])
            raise DataError(
                f"{len(long)} of {len(rows)} {split} rows are longer than --max-length {max_length} tokens "
                f"with their image tokens (ids: {shown}); the longest has {max(lengths)}.",
                f"Raise --max-length to {max(lengths)}, or shorten those rows (a row is never cut: "
                "that would cut its image tokens or its answer).",
            )
        if options.max_answer_tokens is not None:
            check_answers(rows, processor, split, options.max_answer_tokens)
    return []


def check_answers(rows: Any, processor: Any, split: str, limit: int) -> None:
    """Refuse answers that take more than ``limit`` generated tokens, their end-of-turn token counted."""
    answers = answer_lengths(processor, rows)
    long = [row_id for row_id, length in zip(rows["id"], answers, strict=True) if length > limit]
    if long:
        shown = ", ".join(str(row_id) for row_id in long[:5])
        raise DataError(
            f"{len(long)} of {len(rows)} {split} rows have answers longer than --max-answer-tokens {limit} "
            f"(ids: {shown}; the longest takes {max(answers)} tokens with its end of turn): the model "
            "would learn answers its deployment cuts off.",
            f"Shorten those answers, or raise --max-answer-tokens to {max(answers)}.",
        )


def longest_row(data: TaskData, processor: Any, preprocess: str) -> int:
    """The most tokens a train row has, image tokens included."""
    return max(row_lengths(processor, data.split("train"), preprocess), default=1)


def build_trainer(
    model: Any, arguments: Any, data: TaskData, processor: Any, callbacks: list[Any], preprocess: str
) -> Any:
    """The SFT trainer on the train and validation splits, batches built by :class:`ImageChatCollator`."""
    from tuneyard.task_types.causal_lm.training import InstructionTrainer

    return InstructionTrainer(
        model=model,
        args=arguments,
        train_dataset=data.split("train"),
        eval_dataset=data.split("validation"),
        processing_class=processor,
        data_collator=ImageChatCollator(processor, preprocess),
        callbacks=callbacks,
    )
