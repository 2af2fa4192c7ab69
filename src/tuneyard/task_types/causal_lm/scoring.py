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

from tuneyard.evaluate.inference import length_sorted_batches
from tuneyard.task_types.causal_lm.tokens import chat_tokens

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


def score_references(
    model: Any, tokenizer: Any, rows: Dataset, batch_size: int, max_length: int
) -> ReferenceScores:
    """Teacher-forced loss of each row's ``reference`` after its ``prompt`` (rows cut to ``max_length``)."""
    import torch

    encoded = [
        chat_tokens(tokenizer, prompt, [{"role": "assistant", "content": reference}])
        for prompt, reference in zip(rows["prompt"], rows["reference"], strict=True)
    ]
    sequences = [ids[:max_length] for ids, _ in encoded]
    device = next(model.parameters()).device
    losses, counts = [0.0] * len(encoded), [0] * len(encoded)
    for batch in length_sorted_batches([len(ids) for ids in sequences], batch_size):
        longest = max(len(sequences[i]) for i in batch)
        input_ids = torch.full((len(batch), longest), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(batch), longest), -100, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for slot, index in enumerate(batch):
            ids, start = sequences[index], encoded[index][1]
            input_ids[slot, : len(ids)] = torch.tensor(ids)
            mask[slot, : len(ids)] = 1
            labels[slot, start : len(ids)] = torch.tensor(ids[start:], dtype=torch.long)
        with torch.inference_mode():
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits.float()
        targets = labels[:, 1:].to(device)
        token_losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].transpose(1, 2), targets, ignore_index=-100, reduction="none"
        )
        for slot, index in enumerate(batch):
            losses[index] = float(token_losses[slot].sum())
            counts[index] = int((targets[slot] != -100).sum())
    return ReferenceScores(losses, counts)
