"""Perplexity of the reference answers: how likely the model finds them, given their prompts.

Each row is tokenized as training tokenizes it (:mod:`.tokens`, the reference as the
assistant's message) and scored teacher-forced in one forward pass per batch. Only answer tokens
count; perplexity is exp of their mean negative log-likelihood over the whole split
(token-weighted, as language-model perplexity is usually reported).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuneyard.components.throughput import length_sorted_batches
from tuneyard.models.logits import takes_logits_to_keep
from tuneyard.task_types.causal_lm.tokens import chat_tokens, row_tools

if TYPE_CHECKING:
    from datasets import Dataset


@dataclass
class ReferenceScores:
    """Summed answer-token loss and token count per row, in the split's order."""

    losses: list[float]
    tokens: list[int]

    @property
    def perplexity(self) -> float:
        total = sum(self.tokens)
        return math.exp(sum(self.losses) / total) if total else float("nan")


def padded_batch(sequences: list[list[int]], starts: list[int], pad_token_id: int) -> dict[str, Any]:
    """Right-padded ``input_ids`` / ``attention_mask`` and ``labels`` that count tokens from ``starts`` on.

    Positions before a row's start and padding carry -100, the label every loss ignores.
    """
    import torch

    longest = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), longest), pad_token_id, dtype=torch.long)
    labels = torch.full((len(sequences), longest), -100, dtype=torch.long)
    mask = torch.zeros((len(sequences), longest), dtype=torch.long)
    for slot, (ids, start) in enumerate(zip(sequences, starts, strict=True)):
        input_ids[slot, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        mask[slot, : len(ids)] = 1
        labels[slot, start : len(ids)] = input_ids[slot, start : len(ids)]
    return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}


def score_references(
    model: Any, tokenizer: Any, rows: Dataset, batch_size: int, max_length: int
) -> ReferenceScores:
    """Teacher-forced loss of each row's ``reference`` after its ``prompt`` (rows cut to ``max_length``)."""
    encoded = [
        chat_tokens(tokenizer, prompt, [{"role": "assistant", "content": reference}], tools)
        for prompt, reference, tools in zip(rows["prompt"], rows["reference"], row_tools(rows), strict=True)
    ]
    sequences = [ids[:max_length] for ids, _ in encoded]
    starts = [start for _, start in encoded]
    device = next(model.parameters()).device
    losses, counts = [0.0] * len(encoded), [0] * len(encoded)
    for batch in length_sorted_batches([len(ids) for ids in sequences], batch_size):
        inputs = padded_batch(
            [sequences[i] for i in batch], [starts[i] for i in batch], tokenizer.pad_token_id
        )
        on_device = {key: value.to(device) for key, value in inputs.items()}
        row_losses, row_counts = answer_losses(model, on_device)
        for slot, index in enumerate(batch):
            losses[index] = float(row_losses[slot])
            counts[index] = int(row_counts[slot])
    return ReferenceScores(losses, counts)


def answer_losses(model: Any, inputs: dict[str, Any]) -> tuple[Any, Any]:
    """Each row's summed next-token loss over its labelled tokens (``labels`` not -100), and their count.

    ``inputs`` are the model's keyword arguments and ``labels``. Only the positions that
    predict a labelled token are projected to the vocabulary, where the model takes
    transformers' ``logits_to_keep``: the prompt's positions, most of a row, carry no
    label, and their logits (SmolLM2: 49,152 x 576 at each) were a quarter of scoring
    its answers on a CPU (bench/RESULTS.md). Other models compute every
    position's logits and the scored ones are picked from them: the same losses.
    """
    import torch

    labels = inputs["labels"]
    targets = labels[:, 1:]
    scored = targets != -100
    forward = {key: value for key, value in inputs.items() if key != "labels"}
    with torch.inference_mode():
        if takes_logits_to_keep(model):
            predicting = torch.nn.functional.pad(scored, (0, 1))  # position i predicts token i + 1
            logits = model(**forward, logits_to_keep=predicting).logits
        else:
            logits = model(**forward).logits[:, :-1][scored]
        losses = torch.nn.functional.cross_entropy(logits.float(), targets[scored], reduction="none")
        summed = torch.zeros(len(labels), device=losses.device).index_add_(0, scored.nonzero()[:, 0], losses)
    return summed, scored.sum(1)
