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
from tuneyard.task_types.image_text_to_text.generation import generate_answers
from tuneyard.task_types.image_text_to_text.inputs import IGNORED, training_inputs

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.data.tasks import TaskSpec
    from tuneyard.task_types.causal_lm.options import AnswerOptions


def reference_perplexity(
    model: Any, processor: Any, rows: Dataset, batch_size: int, preprocess: str
) -> float:
    """exp(mean loss over the references' tokens), each after its prompt and images."""
    import torch

    device = next(model.parameters()).device
    total, tokens = 0.0, 0
    for start in range(0, len(rows), batch_size):
        batch = [rows[index] for index in range(start, min(start + batch_size, len(rows)))]
        inputs = {
            key: value.to(device) for key, value in training_inputs(processor, batch, preprocess).items()
        }
        with torch.inference_mode():
            logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits
        labels = inputs["labels"][:, 1:]
        losses = torch.nn.functional.cross_entropy(
            logits[:, :-1].flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORED, reduction="sum"
        )
        total += float(losses)
        tokens += int((labels != IGNORED).sum())
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
