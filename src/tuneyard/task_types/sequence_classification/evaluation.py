"""Classification eval: run a sequence classifier over a split, fast, and score it.

Speed comes from doing less work, not from cutting corners: the split is tokenized
once without padding, examples are batched in order of length (so each batch pads
only to its own longest member) and the forward passes run under
``torch.inference_mode``. Logits go back to the split's order before scoring, so
``predictions.csv`` lines up with the data file.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import numpy as np

from tuneyard.components.throughput import Throughput, length_sorted_batches, max_length_for, peak_memory
from tuneyard.data.tasks import TaskSpec
from tuneyard.errors import DataError, EvaluationError
from tuneyard.task_types.base import ProgressCallback
from tuneyard.task_types.sequence_classification.eval_files import ClassificationResult
from tuneyard.task_types.sequence_classification.metrics import (
    classification_metrics,
    per_class_metrics,
    predictions_from_logits,
)

if TYPE_CHECKING:
    import torch
    from datasets import Dataset
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

_GENERIC_LABEL = re.compile(r"^LABEL_\d+$")


def _is_generic(names: list[str]) -> bool:
    """True for transformers' placeholder names (``LABEL_0`` ...) and plain ids (``0``)."""
    return all(_GENERIC_LABEL.match(name) or name.isdigit() for name in names)


def label_columns(model_id2label: dict[int, str], spec: TaskSpec) -> list[int]:
    """Which model output column scores each of the data's labels, in the data's order.

    A model whose ``config.id2label`` names its classes must know exactly the data's
    label set (in any order: columns are matched by name). A model with placeholder
    names (``LABEL_0``) only needs the same number of classes.
    """
    model_names = [str(model_id2label[i]) for i in sorted(model_id2label)]
    data_names = list(spec.label_names)
    if spec.problem == "regression":
        if len(model_names) != 1:
            raise EvaluationError(
                f"task {spec.name!r} is a regression task (one output), but the model has "
                f"{len(model_names)} outputs ({', '.join(model_names)}).",
                "Evaluate a model fine-tuned for this regression task.",
            )
        return [0]
    if _is_generic(model_names) or _is_generic(data_names):
        if len(model_names) != len(data_names):
            raise EvaluationError(
                f"the model has {len(model_names)} classes but the data of {spec.name!r} has "
                f"{len(data_names)}: {', '.join(data_names)}.",
                "Evaluate on data with the label set the model was trained on.",
            )
        return list(range(len(data_names)))
    if set(model_names) != set(data_names):
        missing = sorted(set(data_names) - set(model_names))
        unknown = sorted(set(model_names) - set(data_names))
        raise EvaluationError(
            f"the label set of {spec.name!r} differs from the model's: data labels not in the model: "
            f"{', '.join(missing) or '-'}; model labels not in the data: {', '.join(unknown) or '-'}.",
            f"The model knows: {', '.join(model_names)}. Evaluate on data with these labels.",
        )
    position = {name: i for i, name in enumerate(model_names)}
    return [position[name] for name in data_names]


def check_labelled(dataset: Dataset, spec: TaskSpec, split: str) -> None:
    """Refuse a split whose labels are hidden (GLUE test splits use -1)."""
    if spec.problem == "classification" and len(dataset) and min(dataset["label"]) < 0:
        raise DataError(
            f"split {split!r} of {spec.name!r} has no gold labels (label -1), so it cannot be scored.",
            "Use --split validation, or a local data folder whose test file has labels.",
        )


def tokenize_split(
    dataset: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int
) -> dict[str, list[list[int]]]:
    """Tokenizer outputs per example (pairs encoded together), unpadded."""
    texts = [str(text) for text in dataset["text"]]
    pairs = [str(text) for text in dataset["text_pair"]] if "text_pair" in dataset.column_names else None
    encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=False)
    return dict(encoded)


def run_forward(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    encoded: dict[str, list[list[int]]],
    batch_size: int,
    device: torch.device,
    progress: ProgressCallback | None = None,
) -> tuple[np.ndarray, float]:
    """Logits for every example (at least one) in input order, and the seconds the loop took."""
    import torch

    if batch_size < 1:
        raise EvaluationError(f"--batch-size must be at least 1, got {batch_size}.")
    count = len(encoded["input_ids"])
    lengths = [len(ids) for ids in encoded["input_ids"]]
    outputs: list[np.ndarray | None] = [None] * count
    model.eval()
    started = time.perf_counter()
    with torch.inference_mode():
        for batch in length_sorted_batches(lengths, batch_size):
            features = [{key: values[i] for key, values in encoded.items()} for i in batch]
            inputs = tokenizer.pad(features, padding=True, return_tensors="pt")
            inputs = {key: tensor.to(device) for key, tensor in inputs.items()}
            logits = model(**inputs).logits.float().cpu().numpy()
            for row, index in enumerate(batch):
                outputs[index] = logits[row]
            if progress is not None:
                progress(len(batch))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    return np.stack(outputs), seconds  # type: ignore[arg-type]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def evaluate_classifier(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    dataset: Dataset,
    spec: TaskSpec,
    split: str,
    batch_size: int = 32,
    max_length: int | None = None,
    progress: ProgressCallback | None = None,
) -> ClassificationResult:
    """Score ``model`` on one split of ``spec``: metrics, per-class rows, predictions."""
    import torch

    check_labelled(dataset, spec, split)
    columns = label_columns(dict(model.config.id2label), spec)
    if len(dataset) == 0:
        raise DataError(f"split {split!r} of {spec.name!r} is empty.", "Choose a split with examples.")
    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    length = max_length_for(model, tokenizer, max_length)
    encoded = tokenize_split(dataset, tokenizer, length)
    logits, seconds = run_forward(model, tokenizer, encoded, batch_size, device, progress)
    logits = logits[:, columns]
    predicted = predictions_from_logits(logits, spec)
    gold = np.asarray(dataset["label"])
    memory, measure = peak_memory(device)
    return ClassificationResult(
        spec=spec,
        split=split,
        metrics=classification_metrics(gold, predicted, spec),
        per_class=per_class_metrics(gold, predicted, spec.label_names)
        if spec.problem == "classification"
        else [],
        ids=list(dataset["id"]),
        texts=[str(text) for text in dataset["text"]],
        text_pairs=[str(t) for t in dataset["text_pair"]] if "text_pair" in dataset.column_names else None,
        gold=gold,
        predicted=predicted,
        probabilities=softmax(logits) if spec.problem == "classification" else None,
        throughput=Throughput(
            samples=len(dataset),
            seconds=seconds,
            batch_size=batch_size,
            max_length=length,
            device=str(device),
            peak_memory_mb=memory,
            memory_measure=measure,
        ),
    )
