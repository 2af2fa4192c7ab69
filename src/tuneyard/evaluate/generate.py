"""``tuneyard generate``: a model's answers to a chat split, filed next to the model.

The answers land in ``<artifact>/generations/{task}_{split}/predictions.jsonl`` (one
line per row: id, prompt, request, prediction, reference, tokens, seconds) with a
``generation.json`` saying how they were decoded, through the same placement rules as
``tuneyard eval`` (``--output-dir`` for a model outside the yard). Grading them is
``tuneyard grade`` or, in one step with perplexity, ``tuneyard eval``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tuneyard.components.throughput import choose_device
from tuneyard.errors import EvaluationError
from tuneyard.evaluate.model_eval import trained_task_options
from tuneyard.evaluate.placement import plan_placement, record_in_manifest, results_folder
from tuneyard.task_types import get_task_type
from tuneyard.task_types.base import ProgressCallback
from tuneyard.yard.manifest import utc_now
from tuneyard.yard.root import Yard

if TYPE_CHECKING:
    from tuneyard.data.loading import TaskData
    from tuneyard.task_types.causal_lm.generation import GenerationOptions, Generations

GENERATIONS_FOLDER = "generations"


@dataclass
class GenerateOutcome:
    """The answers and where they were filed."""

    generations: Generations
    folder: Path


def generate(
    model_path: str | Path,
    data: TaskData,
    yard: Yard,
    options: GenerationOptions,
    split: str = "test",
    output_dir: str | Path | None = None,
    batch_size: int = 8,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> GenerateOutcome:
    """Generate an answer for every row of ``data``'s ``split`` and file them."""
    from tuneyard.models.loading import local_model_folder
    from tuneyard.task_types.model_loading import resolve_checkpoint

    task_type = get_task_type(data.spec.task_type)
    generation = task_type.generation
    if generation is None:
        raise EvaluationError(
            f"{data.source} holds {task_type.name} rows; generate answers chat prompts.",
            "Give chat data (a messages column, or prompt and response columns).",
        )
    if not generation.has_prompts(data.spec):
        raise EvaluationError(
            f"{data.source} holds plain text, with no prompts to answer.",
            "Give chat data to generate answers; `tuneyard eval` scores plain text by its perplexity.",
        )
    rows = data.split(split)
    folder = local_model_folder(resolve_checkpoint(model_path, yard))
    placement = plan_placement(
        folder, data.spec.name, split, yard, Path(output_dir) if output_dir else None, GENERATIONS_FOLDER
    )
    model, tokenizer = task_type.model.load_for_eval(folder, choose_device(device))
    generation.prepare_tokenizer(tokenizer, data.spec, str(folder))
    task_options = trained_task_options(task_type, folder, placement.artifact, yard.storage)
    generations = generation.generate(model, tokenizer, rows, options, batch_size, progress, task_options)
    with results_folder(yard, placement) as (temp, final):
        generation.write_predictions(temp, generations)
        settings = {"model": yard.relative(folder), "split": split, **options.model_dump()}
        settings["created"] = utc_now()
        (temp / "generation.json").write_text(json.dumps(settings, indent=2) + "\n")
    record_in_manifest(yard, placement, {}, final)
    return GenerateOutcome(generations, final)
