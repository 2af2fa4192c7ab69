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
    import torch

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
        with torch.inference_mode():
            logits = model(
                input_ids=inputs["input_ids"].to(device), attention_mask=inputs["attention_mask"].to(device)
            ).logits
        targets = inputs["labels"][:, 1:].to(device)
        row_losses = answer_losses(logits[:, :-1], targets)
        for slot, index in enumerate(batch):
            losses[index] = float(row_losses[slot])
            counts[index] = int((targets[slot] != -100).sum())
    return ReferenceScores(losses, counts)


def answer_losses(logits: Any, targets: Any) -> Any:
    """Each row's summed loss over its scored tokens (``targets`` not -100).

    The softmax runs over the answer positions only: the prompt's positions, most of
    a row, carry no label, and a softmax over the whole vocabulary at each of them was
    a sixth to a third of scoring SmolLM2's answers on a CPU (bench/RESULTS.md).
    """
    import torch

    scored = targets != -100
    losses = torch.nn.functional.cross_entropy(logits[scored].float(), targets[scored], reduction="none")
    return torch.zeros(len(targets), device=losses.device).index_add_(0, scored.nonzero()[:, 0], losses)
