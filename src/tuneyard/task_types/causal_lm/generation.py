"""Answers generated for chat prompts: batched ``model.generate``, in the split's order.

Prompts are rendered through the chat template with the generation prompt, batched
in order of length (so a batch pads only to its own longest prompt) and padded on
the left, as decoders need to continue every row from its last token. Decoding is
greedy by default; sampling takes a temperature, top-p and a seed, so a run is
repeatable. ``stop`` strings end a row early (transformers' own stopping criteria);
the text after a stop string is cut, the end-of-turn token always ends a row.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.components.throughput import length_sorted_batches
from tuneyard.task_types.base import ProgressCallback
from tuneyard.task_types.causal_lm.options import GenerationOptions
from tuneyard.task_types.causal_lm.tokens import render_prompt, row_tools

if TYPE_CHECKING:
    from datasets import Dataset


@dataclass
class Generation:
    """One row's answer: the prompt as the model saw it, the text, its tokens, its share of the time."""

    id: Any
    prompt: str
    request: str  # the prompt without the chat template's tokens (plain_request): what a judge reads
    prediction: str
    reference: str
    tokens: int
    seconds: float  # the row's share of its batch's wall time


@dataclass
class Generations:
    """Every row's answer in the split's order, and the time the batches took."""

    rows: list[Generation] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return sum(row.tokens for row in self.rows)


PREDICTIONS_FILE = "predictions.jsonl"


def write_predictions(folder: Path, generations: Generations, scores: list[float] | None = None) -> str:
    """``predictions.jsonl``: a line per row (id, prompt, request, prediction, reference, tokens, seconds
    [, score])."""
    with (folder / PREDICTIONS_FILE).open("w") as handle:
        for index, row in enumerate(generations.rows):
            line = asdict(row) if scores is None else {**asdict(row), "score": scores[index]}
            handle.write(json.dumps(line, default=str) + "\n")
    return PREDICTIONS_FILE


def plain_request(messages: list[dict[str, Any]]) -> str:
    """A prompt's messages as a person reads them, with none of the chat template's tokens.

    One message is its text; a conversation (a system prompt, earlier turns) is a
    ``role: text`` paragraph per message. A vision-language message's parts are its text
    parts, an image shown as ``[image]``.
    """
    texts = [(message["role"], message_text(message["content"])) for message in messages]
    if len(texts) == 1:
        return texts[0][1]
    return "\n\n".join(f"{role}: {text}" for role, text in texts)


def message_text(content: Any) -> str:
    """A message's content as text: a string as it is, a list of parts joined."""
    if isinstance(content, list):
        return " ".join(part["text"] if part.get("type") == "text" else "[image]" for part in content)
    return str(content)


def render_prompts(tokenizer: Any, rows: Dataset) -> list[str]:
    """Each row's prompt messages through the chat template, ending with the generation prompt."""
    return [
        render_prompt(tokenizer, prompt, tools)
        for prompt, tools in zip(rows["prompt"], row_tools(rows), strict=True)
    ]


def cut_at_stop(text: str, stop: list[str]) -> str:
    """``text`` up to the first stop string (the stop string itself left out)."""
    ends = [text.index(s) for s in stop if s in text]
    return text[: min(ends)] if ends else text


def generate_answers(
    model: Any,
    tokenizer: Any,
    rows: Dataset,
    options: GenerationOptions,
    batch_size: int,
    progress: ProgressCallback | None = None,
) -> Generations:
    """Generate an answer for every row of a chat split (``prompt`` / ``reference`` columns)."""
    prompts = render_prompts(tokenizer, rows)
    encoded = tokenizer(prompts, add_special_tokens=False)["input_ids"]

    def inputs_of(batch: list[int]) -> Any:
        return tokenizer.pad(
            {"input_ids": [encoded[i] for i in batch]}, padding_side="left", return_tensors="pt"
        )

    lengths = [len(ids) for ids in encoded]
    return answer_batches(model, tokenizer, rows, prompts, lengths, inputs_of, options, batch_size, progress)


def answer_batches(
    model: Any,
    tokenizer: Any,
    rows: Dataset,
    prompts: list[str],
    lengths: list[int],
    inputs_of: Callable[[list[int]], Any],
    options: GenerationOptions,
    batch_size: int,
    progress: ProgressCallback | None = None,
) -> Generations:
    """The decoding loop of every chat model: rows batched by ``lengths``, each batch's model inputs
    from ``inputs_of(row indices)`` (a text model's tokens, a vision-language model's with images),
    answers decoded and put back in the split's order."""
    import torch

    config = options.generation_config(tokenizer)
    device = next(model.parameters()).device
    answers: list[Generation | None] = [None] * len(prompts)
    result = Generations()
    torch.manual_seed(options.seed)
    for batch in length_sorted_batches(lengths, batch_size):
        inputs = inputs_of(batch).to(device)
        started = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(**inputs, generation_config=config, tokenizer=tokenizer)
        elapsed = time.perf_counter() - started
        result.seconds += elapsed
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        for row_index, tokens in zip(batch, new_tokens, strict=True):
            kept = tokens[tokens != tokenizer.pad_token_id] if tokenizer.pad_token_id is not None else tokens
            text = tokenizer.decode(kept, skip_special_tokens=True)
            answers[row_index] = Generation(
                id=rows[row_index]["id"],
                prompt=prompts[row_index],
                request=plain_request(rows[row_index]["prompt"]),
                prediction=cut_at_stop(text, options.stop).strip(),
                reference=rows[row_index]["reference"],
                tokens=int(kept.numel()),
                seconds=elapsed / len(batch),
            )
        if progress is not None:
            progress(len(batch))
    result.rows = [answer for answer in answers if answer is not None]
    return result
