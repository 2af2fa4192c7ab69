"""``tuneyard eval`` as one call: load the model and data, score, file the results.

Any model ``tuneyard.load`` reads works: plain Hugging Face folders, compressed
models, LoRA adapters (with their base) and run folders (their ``best/``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import ModelError
from tuneyard.evaluate.artifacts import json_number, run_numbers, write_eval_files
from tuneyard.evaluate.classification import ClassificationResult, ProgressCallback, evaluate_classifier
from tuneyard.evaluate.placement import plan_placement, record_in_manifest, results_folder
from tuneyard.yard.manifest import MANIFEST_FILE, read_manifest
from tuneyard.yard.root import Yard

if TYPE_CHECKING:
    import torch

    from tuneyard.data.loading import TaskData


@dataclass
class EvalOutcome:
    """A finished eval: the result and where it was filed."""

    result: ClassificationResult
    folder: Path
    artifact: Path | None
    metrics_key: str


def choose_device(requested: str | None) -> torch.device:
    """``--device`` if given, else the first CUDA GPU when there is one, else the CPU."""
    import torch

    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def load_classifier(folder: Path, device: torch.device) -> tuple[Any, Any]:
    """Model (on ``device``) and tokenizer of a model folder; refuses headless encoders."""
    from tuneyard.models.loading import load, load_tokenizer

    model = load(folder)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not type(inner).__name__.endswith("ForSequenceClassification"):
        raise ModelError(
            f"{folder} holds a {type(inner).__name__}, which has no classification head to evaluate.",
            "Evaluate a fine-tuned classifier (tuneyard finetune ... produces one).",
        )
    return model.to(device), load_tokenizer(folder)


def trained_max_length(folder: Path, artifact: Path | None) -> int | None:
    """The ``max_length`` the model was fine-tuned with, from its manifest's config.

    Scoring at the training length keeps eval numbers equal to those the run logged.
    """
    for candidate in (folder, artifact):
        if candidate is not None and (candidate / MANIFEST_FILE).is_file():
            length = read_manifest(candidate).config.get("max_length")
            if isinstance(length, int) and length > 0:
                return length
    return None


def evaluate_model(
    model_path: str | Path,
    data: TaskData,
    yard: Yard,
    split: str = "validation",
    output_dir: str | Path | None = None,
    batch_size: int = 32,
    max_length: int | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
) -> EvalOutcome:
    """Evaluate the model at ``model_path`` on ``data``'s ``split`` and file the results.

    The placement is worked out before any compute, so a model with nowhere to put
    its results fails at once. Without ``max_length``, inputs are truncated at the
    length the model was fine-tuned with (its manifest's config), else at 512.
    """
    from tuneyard.models.loading import local_model_folder

    dataset = data.split(split)
    folder = local_model_folder(model_path)
    placement = plan_placement(
        folder, data.spec.name, split, yard, Path(output_dir) if output_dir is not None else None
    )
    model, tokenizer = load_classifier(folder, choose_device(device))
    if max_length is None:
        max_length = trained_max_length(folder, placement.artifact)
    result = evaluate_classifier(model, tokenizer, dataset, data.spec, split, batch_size, max_length, progress)
    with results_folder(placement) as (temp, final):
        write_eval_files(result, temp, yard.relative(folder))
    scores = {name: json_number(value) for name, value in result.metrics.items()}
    numbers = run_numbers(result)
    scores.update(samples_per_second=numbers["samples_per_second"], peak_memory_mb=numbers["peak_memory_mb"])
    record_in_manifest(yard, placement, scores, final)
    return EvalOutcome(result=result, folder=final, artifact=placement.artifact, metrics_key=placement.metrics_key)
