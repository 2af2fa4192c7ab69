"""Answers generated for image-chat prompts: batched ``model.generate`` with each row's images.

Rows are batched in order of their prompts' length and padded on the left, as for text
(:mod:`tuneyard.task_types.causal_lm.generation`, whose records and files these share);
the images go through the run's ``--image-preprocess`` (:mod:`.inputs`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneyard.task_types.base import ProgressCallback
from tuneyard.task_types.causal_lm.generation import Generations, answer_batches
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
    prompts = prompt_texts(processor, rows)

    def inputs_of(batch: list[int]) -> Any:
        images = [list(row_images) for row_images in rows.select(batch)["images"]]
        return prompt_inputs(processor, [prompts[i] for i in batch], images, preprocess)

    lengths = [len(prompt) for prompt in prompts]
    return answer_batches(
        model, processor.tokenizer, rows, prompts, lengths, inputs_of, options, batch_size, progress
    )
