"""Audio classification eval: the split's features (cached, as training extracts them), batched
forward passes, and the same scores and files as text classification.

Every clip has the same length after cropping and padding, so batches need no sorting.
The throughput reports clips per second and seconds of audio per second
(``audio_seconds_per_second``): the audio counted is what the model heard of each clip, its
own samples after cropping to ``--max-seconds``, padding not counted (the share of the
extractor's attention mask that is set, times the window); ``max_length`` is the window in
samples.
"""

from __future__ import annotations

import inspect
import time
from typing import TYPE_CHECKING, Any

import numpy as np

from tuneyard.components.throughput import Throughput, peak_memory
from tuneyard.errors import DataError, EvaluationError
from tuneyard.task_types.audio_classification.data import audio_sources
from tuneyard.task_types.audio_classification.features import extract, window_samples
from tuneyard.task_types.audio_classification.options import AudioOptions
from tuneyard.task_types.base import ProgressCallback
from tuneyard.task_types.sequence_classification.eval_files import ClassificationResult
from tuneyard.task_types.sequence_classification.evaluation import check_labelled, label_columns, softmax
from tuneyard.task_types.sequence_classification.metrics import (
    classification_metrics,
    per_class_metrics,
    predictions_from_logits,
)

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.data.tasks import TaskSpec


def model_inputs(model: Any, features: Dataset) -> list[str]:
    """The feature columns the model's ``forward`` takes (Whisper's takes no attention mask)."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    accepted = inspect.signature(inner.forward).parameters
    return [column for column in features.column_names if column in accepted and column != "labels"]


def evaluate_audio(
    model: Any,
    extractor: Any,
    dataset: Dataset,
    spec: TaskSpec,
    split: str,
    batch_size: int,
    options: AudioOptions,
    progress: ProgressCallback | None = None,
) -> ClassificationResult:
    """Score ``model`` on one split of audio rows: metrics, per-class rows, predictions."""
    import torch

    if batch_size < 1:
        raise EvaluationError(f"--batch-size must be at least 1, got {batch_size}.")
    if len(dataset) == 0:
        raise DataError(f"split {split!r} of {spec.name!r} is empty.", "Choose a split with examples.")
    check_labelled(dataset, spec, split)
    columns = label_columns(dict(model.config.id2label), spec)
    features = extract(dataset, extractor, options, split)
    names = model_inputs(model, features)
    window = window_samples(extractor, options.max_seconds)
    features = features.with_format("torch", columns=list(dict.fromkeys([*names, "attention_mask"])))
    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.eval()
    chunks = []
    heard = 0.0  # seconds of the clips' own audio the model took (see the module)
    started = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(features), batch_size):
            batch = features[start : start + batch_size]
            logits = model(**{name: batch[name].to(device) for name in names}).logits
            chunks.append(logits.float().cpu().numpy())
            mask = batch["attention_mask"]
            heard += float(mask.float().mean(dim=1).sum()) * window / extractor.sampling_rate
            if progress is not None:
                progress(len(chunks[-1]))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - started
    logits = np.concatenate(chunks)[:, columns]
    predicted = predictions_from_logits(logits, spec)
    gold = np.asarray(dataset["label"])
    memory, measure = peak_memory(device)
    return ClassificationResult(
        spec=spec,
        split=split,
        metrics=classification_metrics(gold, predicted, spec),
        per_class=per_class_metrics(gold, predicted, spec.label_names),
        ids=list(dataset["id"]),
        texts=audio_sources(dataset),
        text_pairs=None,
        gold=gold,
        predicted=predicted,
        probabilities=softmax(logits),
        throughput=Throughput(
            samples=len(dataset),
            seconds=seconds,
            batch_size=batch_size,
            max_length=window,
            device=str(device),
            peak_memory_mb=memory,
            memory_measure=measure,
            amounts={"audio_seconds": heard},
        ),
    )
