"""Supervised fine-tuning on chat rows with TRL's ``SFTTrainer``: the loss is on the answer only.

(Plain text rows train the way TRL trains its ``text`` form: every token is learned; a
row longer than ``--max-length`` loses its end, counted in a note.)

TRL renders each row through the chat template (the prompt with the generation
prompt, then prompt + answer), sets the prompt tokens' labels to -100
(completion-only loss), truncates rows to ``--max-length`` keeping their start, and
packs rows when asked. What truncation would do is counted here first, with the
same tokenization, so nothing is cut or dropped silently: a row whose answer cannot
fit is refused before any run folder exists, and the rows that lose the end of their
answer are counted for the user.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trl import SFTTrainer

from tuneyard.errors import DataError, ModelError
from tuneyard.task_types.causal_lm.tokens import chat_tokens

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.components.distillation import Teacher
    from tuneyard.data.loading import TaskData

TRAINED_SPLITS = ("train", "validation")


class InstructionTrainer(SFTTrainer):
    """TRL's ``SFTTrainer`` whose evaluations also report perplexity, exp(mean loss over learned tokens)."""

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "eval_loss" in logs:  # the same dict reaches the callbacks' on_evaluate
            logs["eval_perplexity"] = math.exp(min(logs["eval_loss"], 700.0))
        super().log(logs, start_time)


@dataclass
class SplitLengths:
    """Token counts of one split's rows against ``--max-length``."""

    split: str
    rows: int
    longest: int
    cut: int  # rows longer than max_length that keep part of their answer
    unfit: list[Any]  # ids of rows whose answer cannot be learned within max_length
    cut_part: str = "the end of their answer"

    @classmethod
    def measure(cls, split: str, rows: Dataset, tokenizer: Any, max_length: int) -> SplitLengths:
        if "text" in rows.column_names:  # plain text: learned whole, so a long row only loses its end
            totals = [len(ids) + 1 for ids in tokenizer(list(rows["text"]))["input_ids"]]  # + TRL's EOS
            cut = sum(n > max_length for n in totals)
            return cls(split, len(rows), max(totals, default=0), cut, [], "their end")
        longest, cut, unfit = 0, 0, []
        for row in rows:
            ids, start = chat_tokens(tokenizer, row["prompt"], row["completion"])
            total, answer = len(ids), len(ids) - start
            longest = max(longest, total)
            if answer > max_length or total - answer >= max_length:
                unfit.append(row["id"])
            elif total > max_length:
                cut += 1
        return cls(split, len(rows), longest, cut, unfit)


def check_lengths(data: TaskData, tokenizer: Any, max_length: int) -> list[str]:
    """Refuse rows whose answer cannot fit ``max_length``; notes counting the rows that will be cut."""
    if "text" in data.split("train").column_names and tokenizer.eos_token is None:
        raise ModelError(
            "the tokenizer has no end-of-sequence token, which TRL ends every plain-text row with.",
            "Set one (tokenizer.eos_token = ...) and save the tokenizer with the model.",
        )
    notes = []
    for split in TRAINED_SPLITS:
        lengths = SplitLengths.measure(split, data.split(split), tokenizer, max_length)
        if lengths.unfit:
            shown = ", ".join(str(row_id) for row_id in lengths.unfit[:5])
            raise DataError(
                f"{len(lengths.unfit)} of {lengths.rows} {split} rows have an answer that does not fit in "
                f"--max-length {max_length} tokens (ids: {shown}); the longest row has "
                f"{lengths.longest} tokens.",
                f"Raise --max-length (to {lengths.longest} keeps every row whole), or shorten those rows.",
            )
        if lengths.cut:
            notes.append(
                f"note: {lengths.cut} of {lengths.rows} {split} rows are longer than --max-length "
                f"{max_length} tokens and lose {lengths.cut_part} (longest: {lengths.longest}); "
                f"--max-length {lengths.longest} keeps them whole."
            )
    return notes


def build_trainer(
    model: Any,
    arguments: Any,
    data: TaskData,
    tokenizer: Any,
    callbacks: list[Any],
    teacher: Teacher | None = None,
) -> InstructionTrainer:
    """The SFT trainer on the prompt / completion (or text) columns of the train and validation splits.

    With a ``teacher`` its training loss also matches the teacher's next-token
    distribution on the learned tokens (:mod:`tuneyard.train.distillation`).
    """
    from tuneyard.components.distillation import distilling_trainer_class

    columns = ["text"] if "text" in data.split("train").column_names else ["prompt", "completion"]
    trainer_class, extra = (
        (InstructionTrainer, {})
        if teacher is None
        else (distilling_trainer_class(InstructionTrainer, token_level=True), {"teacher": teacher})
    )
    return trainer_class(  # type: ignore[no-any-return]
        **extra,
        model=model,
        args=arguments,
        train_dataset=data.split("train").select_columns(columns),
        eval_dataset=data.split("validation").select_columns(columns),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
