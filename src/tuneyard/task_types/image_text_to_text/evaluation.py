"""Graded evaluation of a vision-language model: generate each answer from its images, grade it, score
the references.

The same grading as a causal LM's (:mod:`tuneyard.task_types.causal_lm.evaluation`: the
task's grader, its logs, ``predictions.jsonl``, ``metrics.json``); the answers are
generated from the rows' images and the references' perplexity is the loss on their
tokens after the prompt and its images, as training computes it.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tuneyard.task_types.base import ProgressCallback
from tuneyard.task_types.causal_lm.evaluation import GradedResult, answer_grader, graded_result
from tuneyard.task_types.causal_lm.scoring import answer_losses
from tuneyard.task_types.image_text_to_text.generation import generate_answers
from tuneyard.task_types.image_text_to_text.inputs import training_inputs

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.data.tasks import TaskSpec
    from tuneyard.task_types.causal_lm.options import AnswerOptions


def reference_perplexity(
    model: Any, processor: Any, rows: Dataset, batch_size: int, preprocess: str
) -> float:
    """exp(mean loss over the references' tokens), each after its prompt and images
    (:func:`~tuneyard.task_types.causal_lm.scoring.answer_losses`, as a text model's references)."""
    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = [rows[index] for index in range(start, min(start + batch_size, len(rows)))]
        inputs = {
            key: value.to(device) for key, value in training_inputs(processor, batch, preprocess).items()
        }
        losses, counts = answer_losses(model, inputs)
        total += float(losses.sum())
        tokens += int(counts.sum())
    return math.exp(min(total / max(tokens, 1), 700.0))


def evaluate_generations(
    model: Any,
    processor: Any,
    rows: Dataset,
    spec: TaskSpec,
    split: str,
    batch_size: int,
    options: AnswerOptions,
    preprocess: str,
    progress: ProgressCallback | None = None,
) -> GradedResult:
    """Generate, grade and score one split of image-chat rows."""
    grader = answer_grader(options, rows)
    model.eval()
    generations = generate_answers(model, processor, rows, options, batch_size, preprocess, progress)
    perplexity = reference_perplexity(model, processor, rows, batch_size, preprocess)
    return graded_result(model, grader, rows, generations, perplexity, spec, split, batch_size, 0, options)
