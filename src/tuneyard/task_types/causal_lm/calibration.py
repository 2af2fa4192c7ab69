"""A decoder's calibration and held-out text: conversations or plain text, as language-model batches.

Compression calibrates a language model on text it would read: a chat folder's rows
are whole conversations (prompt and answer, through the chat template, as training
tokenizes them), and a folder of plain ``text`` rows (a classification folder's text
column; its labels are not read) is tokenized as it is. Every real token is a
language-modelling target, so Fisher weights come from the next-token loss over the
whole text, and held-out perplexity counts every token after the first. ``tuneyard
eval`` scores plain text rows the same way (:mod:`.evaluation`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tuneyard.components.throughput import length_sorted_batches
from tuneyard.errors import CompressionError
from tuneyard.task_types.causal_lm.scoring import padded_batch
from tuneyard.task_types.causal_lm.tokens import chat_tokens, row_tools

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.components.calibration import Batch
    from tuneyard.data.tasks import TaskSpec
    from tuneyard.task_types.base import ProgressCallback


def token_sequences(tokenizer: Any, rows: Dataset, spec: TaskSpec) -> list[list[int]]:
    """Each row's token ids: a conversation through the chat template, or a ``text`` column as is."""
    from tuneyard.task_types.causal_lm.model import with_chat_template

    if {"prompt", "completion"} <= set(rows.column_names):
        with_chat_template(tokenizer, spec, "the model")
        return [
            chat_tokens(tokenizer, prompt, completion, tools)[0]
            for prompt, completion, tools in zip(
                rows["prompt"], rows["completion"], row_tools(rows), strict=True
            )
        ]
    if "text" in rows.column_names:
        return [list(ids) for ids in tokenizer(list(rows["text"]))["input_ids"]]
    raise CompressionError(
        f"{spec.name} has neither chat rows nor a text column to calibrate a language model on; "
        f"its columns are: {', '.join(rows.column_names)}.",
        "Give chat data (messages, or prompt/response columns) or plain text in a 'text' column.",
    )


def language_model_batches(
    tokenizer: Any, rows: Dataset, spec: TaskSpec, batch_size: int, max_length: int
) -> list[Batch]:
    """Rows cut to ``max_length`` tokens, in length-sorted padded batches labelled for next-token loss."""
    sequences = [ids[:max_length] for ids in token_sequences(tokenizer, rows, spec)]
    return [
        padded_batch([sequences[i] for i in batch], [0] * len(batch), tokenizer.pad_token_id)
        for batch in length_sorted_batches([len(ids) for ids in sequences], batch_size)
    ]


def perplexity(model: Any, batches: list[Batch], progress: ProgressCallback | None = None) -> float:
    """exp of the mean next-token loss over every labelled token of ``batches`` (token-weighted)."""
    import torch

    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    with torch.inference_mode():
        for batch in batches:
            count = int((batch["labels"][:, 1:] != -100).sum())
            loss = model(**{key: value.to(device) for key, value in batch.items()}).loss
            total, tokens = total + float(loss) * count, tokens + count
            if progress is not None:
                progress(len(batch["input_ids"]))
    return math.exp(total / tokens) if tokens else float("nan")
