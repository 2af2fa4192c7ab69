"""Held-out scores of a compression: the model measured on validation rows before and after.

A decoder's compression is judged by its perplexity on text it never calibrated on
(the papers' yardstick: SVD-LLM, ASVD); the task type says what it scores
(:attr:`tuneyard.task_types.base.TaskType.held_out_metrics`), this module measures it on
the first ``--held-out-samples`` rows of the validation split, so before and after
read exactly the same tokens. Every model is also measured by its *output error*: the
relative distance between the compressed and the dense model's last hidden states,
``||H' - H||_F / ||H||_F``, over the real tokens of those rows only (padding positions
carry no meaning, and counting them would dilute or inflate the error by batch shape);
where the task type scores a model in one forward pass a batch (a decoder's perplexity),
those passes also give the hidden states, so each model reads the held-out rows once.
The batches are the task type's model inputs, whatever they are (token ids, a speech
encoder's samples); an attention mask at another resolution than the hidden states (a
speech encoder's, over samples) cannot pick positions, and every position counts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from tuneyard.compress.calibration import held_out_batches

if TYPE_CHECKING:
    from tuneyard.components.calibration import Batch
    from tuneyard.compress.options import CompressOptions
    from tuneyard.data.loading import TaskData
    from tuneyard.task_types.base import TaskType


@dataclass
class HeldOut:
    """The held-out batches and the scores on them: the dense model's, then the compressed one's."""

    task_type: TaskType | None = None
    batches: list[Batch] = field(default_factory=list)
    rows: int = 0
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)
    reference: list[torch.Tensor] = field(default_factory=list)  # the dense model's hidden states
    output_error: float | None = None

    @classmethod
    def measure(
        cls, task_type: TaskType, model: Any, tokenizer: Any, data: TaskData | None, options: CompressOptions
    ) -> HeldOut:
        """Score the dense ``model`` and keep its hidden states (nothing without validation rows)."""
        if data is None:
            return cls()
        batches = held_out_batches(
            data, task_type, tokenizer, options.held_out_samples, options.batch_size, options.max_length
        )
        if not batches:
            return cls()
        rows = sum(len(next(iter(batch.values()))) for batch in batches)
        before, reference = scores_and_hidden_states(task_type, model, batches)
        return cls(task_type, batches, rows, before, reference=reference)

    def measure_after(self, model: Any) -> None:
        """Score the compressed ``model`` on the same batches, and its output error."""
        if self.task_type is not None:
            self.after, states = scores_and_hidden_states(self.task_type, model, self.batches)
            self.output_error = relative_error(states, self.reference)

    def metrics(self) -> dict[str, float]:
        """``{name}_before`` / ``{name}_after``, ``output_error`` and ``held_out_rows``, for the manifest."""
        if self.output_error is None:
            return {}
        scores = {f"{name}_before": value for name, value in self.before.items()}
        return (
            scores
            | {f"{name}_after": value for name, value in self.after.items()}
            | {"output_error": self.output_error, "held_out_rows": self.rows}
        )

    def table(self) -> list[tuple[str, float, float]]:
        """``(metric, before, after)`` rows for the printed summary (output error: 0 before)."""
        scores = [(name, self.before[name], self.after[name]) for name in self.before if name in self.after]
        if self.output_error is not None:
            scores.append(("output error", 0.0, self.output_error))
        return scores


def scores_and_hidden_states(
    task_type: TaskType, model: Any, batches: list[Batch]
) -> tuple[dict[str, float], list[torch.Tensor]]:
    """``model``'s held-out scores and its last hidden states (:func:`final_hidden_states`).

    A task type that scores by reading each batch once (a decoder's perplexity: a forward
    pass per batch) hands over the hidden states of those same passes, asked for by a hook,
    so the held-out rows go through the model once, not twice. Scores read any other way
    (none, several passes a batch) leave the states to a pass of their own.
    """
    captured: list[torch.Tensor] = []

    def ask_for_states(module: Any, args: Any, kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        return args, {**kwargs, "output_hidden_states": True}

    def keep_states(module: Any, args: Any, kwargs: dict[str, Any], output: Any) -> None:
        captured.append(real_token_states(output.hidden_states[-1], kwargs.get("attention_mask")))

    hooks = [
        model.register_forward_pre_hook(ask_for_states, with_kwargs=True),
        model.register_forward_hook(keep_states, with_kwargs=True),
    ]
    try:
        scores = task_type.compression.held_out_scores(model, batches)
    finally:
        for hook in hooks:
            hook.remove()
    if len(captured) != len(batches):
        captured = final_hidden_states(model, batches)
    return scores, captured


def final_hidden_states(model: Any, batches: list[Batch]) -> list[torch.Tensor]:
    """The last layer's hidden state at every real (unpadded) token, one ``(tokens, hidden)`` per batch."""
    device = next(model.parameters()).device
    states = []
    with torch.inference_mode():
        for batch in batches:
            inputs = {name: tensor.to(device) for name, tensor in batch.items() if name != "labels"}
            hidden = model(**inputs, output_hidden_states=True).hidden_states[-1]
            states.append(real_token_states(hidden, inputs.get("attention_mask")))
    return states


def real_token_states(hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """``hidden`` at the real tokens of ``mask`` (every position without a mask of its shape), on the CPU."""
    if mask is None or mask.shape != hidden.shape[:2]:
        mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
    return hidden[mask.bool()].float().cpu()


def relative_error(states: list[torch.Tensor], reference: list[torch.Tensor]) -> float:
    """``||states - reference||_F / ||reference||_F`` over all batches together."""
    difference = sum(float((state - ref).pow(2).sum()) for state, ref in zip(states, reference, strict=True))
    norm = sum(float(ref.pow(2).sum()) for ref in reference)
    return math.sqrt(difference / norm) if norm > 0 else 0.0
