"""Supervised fine-tuning on chat rows with TRL's ``SFTTrainer``: the loss is on the assistant's turns only.

(Plain text rows train the way TRL trains its ``text`` form: every token is learned; a
row longer than ``--max-length`` loses its end, counted in a note.)

Each conversation is tokenized here, whole, through the chat template, with labels on
the tokens of every assistant turn (:func:`.tokens.conversation_tokens`), so the
earlier answers of a multi-turn row are learned too, not only the last; TRL takes the
``input_ids`` / ``labels`` rows as they are, truncates them to ``--max-length``
keeping their start, and packs them when asked. What truncation would do is counted
here first, with the same tokens, so nothing is cut or dropped silently: a row whose
answer cannot fit is refused before any run folder exists, and the rows that lose the
end of their answers are counted for the user. Without ``--max-length`` the length is
the longest training row, within the model's context (:func:`fitting_max_length`).
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trl import SFTTrainer

from tuneyard.errors import DataError, ModelError
from tuneyard.task_types.causal_lm.tokens import conversation_tokens, row_tools

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.components.distillation import Teacher
    from tuneyard.data.loading import TaskData
    from tuneyard.models.checkpoint import StartingCheckpoint

TRAINED_SPLITS = ("train", "validation")
# Tokenizers without a known limit say 1e30 (transformers' VERY_LARGE_INTEGER); below this one is real.
SANE_TOKENIZER_LIMIT = 10_000_000


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
    cut: int  # rows longer than max_length that keep part of their answers
    unfit: list[Any]  # ids of rows with an answer that cannot be learned within max_length
    cut_part: str = "the end of their answers"

    @classmethod
    def measure(cls, split: str, rows: Dataset, tokenizer: Any, max_length: int) -> SplitLengths:
        if "text" in rows.column_names:  # plain text: learned whole, so a long row only loses its end
            totals = [len(ids) + 1 for ids in tokenizer(list(rows["text"]))["input_ids"]]  # + TRL's EOS
            cut = sum(n > max_length for n in totals)
            return cls(split, len(rows), max(totals, default=0), cut, [], "their end")
        longest, cut, unfit = 0, 0, []
        columns = learned_columns(rows, tokenizer)
        for row_id, ids, labels in zip(rows["id"], columns["input_ids"], columns["labels"], strict=True):
            learned = [index for index, label in enumerate(labels) if label != -100]
            longest = max(longest, len(ids))
            if not learned or learned[0] >= max_length or _longest_turn(learned) > max_length:
                unfit.append(row_id)
            elif len(ids) > max_length:
                cut += 1
        return cls(split, len(rows), longest, cut, unfit)


def learned_columns(rows: Dataset, tokenizer: Any) -> dict[str, list[list[int]]]:
    """Chat rows as ``input_ids`` and ``labels`` (-100 outside the assistant turns): what training learns."""
    columns: dict[str, list[list[int]]] = {"input_ids": [], "labels": []}
    for prompt, completion, tools in zip(rows["prompt"], rows["completion"], row_tools(rows), strict=True):
        ids, mask = conversation_tokens(tokenizer, prompt + completion, tools)
        columns["input_ids"].append(ids)
        columns["labels"].append(
            [token if learned else -100 for token, learned in zip(ids, mask, strict=True)]
        )
    return columns


def _longest_turn(learned: list[int]) -> int:
    """The most tokens one assistant turn has, from the (sorted) positions of the learned tokens."""
    longest = run = 0
    for index, position in enumerate(learned):
        run = run + 1 if index and position == learned[index - 1] + 1 else 1
        longest = max(longest, run)
    return longest


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


def model_context(checkpoint: StartingCheckpoint, tokenizer: Any) -> int | None:
    """The most tokens the model reads at once: its position embeddings, else a sane tokenizer limit."""
    from tuneyard.models.loading import load_config

    try:
        config = load_config(checkpoint.source).get_text_config()
    except ModelError:  # a compressed folder's own format: the tokenizer may still know
        config = None
    positions = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if positions:
        return int(positions)
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if limit and limit < SANE_TOKENIZER_LIMIT else None


def fitting_max_length(
    data: TaskData, tokenizer: Any, checkpoint: StartingCheckpoint
) -> tuple[int, list[str]] | None:
    """Chat rows: the longest training row's tokens, within the model's context, and a note saying so.

    Plain text keeps the default length (a corpus's longest document is no length to train at).
    """
    if "text" in data.split("train").column_names:
        return None
    longest = SplitLengths.measure("train", data.split("train"), tokenizer, sys.maxsize).longest
    context = model_context(checkpoint, tokenizer)
    if context is not None and longest > context:
        return context, [
            f"note: --max-length {context}, the model's context window (the longest train row has "
            f"{longest} tokens and loses its end); pass --max-length to choose."
        ]
    return longest, [
        f"note: --max-length {longest}, the longest train row's tokens, so no row is cut"
        + (f" (the model reads up to {context})" if context else "")
        + "; pass --max-length to choose."
    ]


def build_trainer(
    model: Any,
    arguments: Any,
    data: TaskData,
    tokenizer: Any,
    callbacks: list[Any],
    teacher: Teacher | None = None,
) -> InstructionTrainer:
    """The SFT trainer on the train and validation splits: conversations as token ids and labels, or text.

    With a ``teacher`` its training loss also matches the teacher's next-token
    distribution on the learned tokens (:mod:`tuneyard.train.distillation`).
    """
    from tuneyard.components.distillation import distilling_trainer_class

    def rows(split: str) -> Dataset:
        from datasets import Dataset

        rows = data.split(split)
        if "text" in rows.column_names:
            return rows.select_columns(["text"])
        return Dataset.from_dict(learned_columns(rows, tokenizer))

    trainer_class, extra = (
        (InstructionTrainer, {})
        if teacher is None
        else (distilling_trainer_class(InstructionTrainer, token_level=True), {"teacher": teacher})
    )
    return trainer_class(  # type: ignore[no-any-return]
        **extra,
        model=model,
        args=arguments,
        train_dataset=rows("train"),
        eval_dataset=rows("validation"),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
