"""Answers generated for image-chat prompts: batched ``model.generate`` with each row's images.

Rows are batched in order of their prompts' length and padded on the left, as for text
(:mod:`tuneyard.task_types.causal_lm.generation`, whose records and files these share);
the images go through the run's ``--image-preprocess`` (:mod:`.inputs`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tuneyard.components.throughput import length_sorted_batches
from tuneyard.task_types.base import ProgressCallback
from tuneyard.task_types.causal_lm.generation import Generation, Generations, cut_at_stop
from tuneyard.task_types.image_text_to_text.inputs import prompt_inputs, prompt_texts

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.task_types.causal_lm.options import GenerationOptions


def generate_answers(
    model: Any,
    processor: Any,
    rows: Dataset,
    options: GenerationOptions,
    batch_size: int,
    preprocess: str,
    progress: ProgressCallback | None = None,
) -> Generations:
    """An answer for every row (``prompt`` / ``images`` / ``reference`` columns), in the split's order."""
    import torch

    tokenizer = processor.tokenizer
    prompts = prompt_texts(processor, rows)
    config = options.generation_config(tokenizer)
    device = next(model.parameters()).device
    answers: list[Generation | None] = [None] * len(prompts)
    result = Generations()
    torch.manual_seed(options.seed)
    for batch in length_sorted_batches([len(prompt) for prompt in prompts], batch_size):
        chosen = rows.select(batch)
        images = [list(row_images) for row_images in chosen["images"]]
        inputs = prompt_inputs(processor, [prompts[i] for i in batch], images, preprocess)
        inputs = inputs.to(device)
        started = time.perf_counter()
        with torch.inference_mode():
            output = model.generate(**inputs, generation_config=config, tokenizer=tokenizer)
        elapsed = time.perf_counter() - started
        result.seconds += elapsed
        new_tokens = output[:, inputs["input_ids"].shape[1] :]
        for row_index, tokens in zip(batch, new_tokens, strict=True):
            kept = tokens[tokens != tokenizer.pad_token_id]
            text = tokenizer.decode(kept, skip_special_tokens=True)
            answers[row_index] = Generation(
                id=rows[row_index]["id"],
                prompt=prompts[row_index],
                prediction=cut_at_stop(text, options.stop).strip(),
                reference=rows[row_index]["reference"],
                tokens=int(kept.numel()),
                seconds=elapsed / len(batch),
            )
        if progress is not None:
            progress(len(batch))
    result.rows = [answer for answer in answers if answer is not None]
    return result
