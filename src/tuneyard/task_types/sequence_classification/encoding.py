"""Turn a task's text splits into model inputs for one tokenizer.

Tokenization truncates to ``max_length`` but does not pad: the data collator pads
each batch to its longest row, which is faster than padding every row to the limit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneyard.data.fingerprints import map_fingerprint
from tuneyard.data.loading import TaskData
from tuneyard.models.loading import ensure_padding_token

if TYPE_CHECKING:
    from datasets import DatasetDict
    from transformers import PreTrainedTokenizerBase

TEXT_COLUMNS = ("text", "text_pair", "id")


def tokenize_task(
    data: TaskData,
    tokenizer: PreTrainedTokenizerBase,
    max_length: int,
    splits: tuple[str, ...] = ("train", "validation"),
) -> DatasetDict:
    """``train`` and ``validation`` as ``input_ids`` / ``attention_mask`` / ... / ``labels``."""
    from datasets import DatasetDict

    ensure_padding_token(tokenizer)
    pair = data.spec.text_pair_column is not None

    def encode(batch: dict[str, list[Any]]) -> Any:
        return tokenizer(
            batch["text"], batch["text_pair"] if pair else None, truncation=True, max_length=max_length
        )

    encoded = {}
    for name in splits:
        split = data.split(name)
        drop = [column for column in TEXT_COLUMNS if column in split.column_names]
        encoded[name] = split.map(
            encode, batched=True, remove_columns=drop, new_fingerprint=map_fingerprint(split)
        ).rename_column("label", "labels")
    return DatasetDict(encoded)
