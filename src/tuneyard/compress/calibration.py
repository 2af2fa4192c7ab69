"""Calibration batches from a task's train split, and the linear probe for headless bases.

Samples are drawn seeded from the **train** split only, so the split a model is
evaluated on never shapes its compression.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from tuneyard.compress.statistics import Batch
from tuneyard.errors import CompressionError, DataError


@dataclass(frozen=True)
class Columns:
    """Column names of a local data folder (``--text-column`` ...)."""

    text: str = "text"
    text_pair: str | None = None
    label: str = "label"


@dataclass
class CalibrationSet:
    """Tokenised calibration batches and where they came from."""

    batches: list[Batch]
    source: str
    samples: int
    labelled: bool
    num_labels: int
    label_names: tuple[str, ...]
    regression: bool


def quiet_datasets_bars() -> None:
    """datasets' "Generating train split" bars would interleave with tuneyard's own."""
    import datasets

    datasets.disable_progress_bars()


def tokenized_batches(
    tokenizer: Any, rows: dict[str, list[Any]], batch_size: int, max_length: int, regression: bool, labelled: bool
) -> list[Batch]:
    """Rows tokenised, sorted by length and padded per batch, so little compute goes to padding.

    The statistics skip padding tokens anyway; sorting only saves the forward passes' work.
    """
    pair = rows.get("text_pair")
    encoded = tokenizer(rows["text"], pair, truncation=True, max_length=max_length)
    order = sorted(range(len(rows["text"])), key=lambda index: len(encoded["input_ids"][index]))
    batches = []
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        features = [{key: values[index] for key, values in encoded.items()} for index in chosen]
        batch: Batch = dict(tokenizer.pad(features, return_tensors="pt"))
        if labelled:
            labels = [rows["label"][index] for index in chosen]
            batch["labels"] = torch.tensor(labels, dtype=torch.float32 if regression else torch.long)
        batches.append(batch)
    return batches


def load_calibration(
    tokenizer: Any,
    task: str | None,
    data_dir: str | Path | None,
    samples: int,
    batch_size: int,
    max_length: int,
    seed: int,
    columns: Columns | None = None,
) -> CalibrationSet:
    """``samples`` seeded rows of the train split of ``task`` or ``data_dir``, tokenised in batches."""
    from tuneyard.data.loading import load_task_data

    quiet_datasets_bars()
    if samples < 1:
        raise CompressionError(f"--calib-samples {samples} is below 1.", "Use e.g. --calib-samples 256.")
    # load_task_data's own seed carves a validation split off train when a folder has
    # none; keeping its default carves the same split evaluation does, so calibration
    # rows can never be evaluation rows. ``seed`` only picks the calibration sample.
    columns = columns or Columns()
    data = load_task_data(
        task=task, data_dir=data_dir, require_labels=False, text_column=columns.text,
        text_pair_column=columns.text_pair, label_column=columns.label,
    )
    if "train" not in data.splits:
        raise DataError(
            f"{data.source} has no train split to draw calibration samples from.",
            "Calibration never uses the evaluation split; add a train file (train.csv, ...).",
        )
    train = data.splits["train"]
    chosen = train.shuffle(seed=seed).select(range(min(samples, len(train))))
    labels = list(chosen["label"])
    labelled = bool(labels) and all(label is not None and label != -1 for label in labels)
    regression = data.spec.problem == "regression"
    batches = tokenized_batches(tokenizer, chosen[:], batch_size, max_length, regression, labelled)
    return CalibrationSet(
        batches=batches,
        source=data.source,
        samples=len(chosen),
        labelled=labelled,
        num_labels=data.spec.num_labels,
        label_names=data.spec.label_names,
        regression=regression,
    )


def head_output_layer(model: nn.Module, num_labels: int) -> tuple[str, nn.Linear]:
    """The classification head's last linear layer (outside the base model)."""
    prefix = getattr(model, "base_model_prefix", "")
    found = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and module.out_features == num_labels
        and not (prefix and name.startswith(prefix + "."))
    ]
    if not found:
        raise CompressionError(f"{type(model).__name__} has no classification head with {num_labels} outputs.")
    return found[-1]


def fit_linear_probe(model: nn.Module, calibration: CalibrationSet) -> str:
    """Fit the head's last linear layer on frozen features (logistic / ridge regression).

    Fisher weights come from the task loss's gradients; with a randomly initialised
    head those gradients would measure noise, so a base model without a trained head
    first gets a probe fitted on the calibration data. Returns the layer's name.
    """
    from sklearn.linear_model import LogisticRegression, Ridge

    name, layer = head_output_layer(model, calibration.num_labels)
    features: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(lambda _module, inputs: features.append(inputs[0].detach().float()))
    try:
        with torch.inference_mode():
            for batch in calibration.batches:
                model(**{key: value for key, value in batch.items() if key != "labels"})
    finally:
        handle.remove()
    x = torch.cat(features).numpy()
    y = torch.cat([batch["labels"] for batch in calibration.batches]).numpy()
    fit_bias = layer.bias is not None
    weight = torch.zeros_like(layer.weight, dtype=torch.float64)
    bias = torch.zeros(layer.out_features, dtype=torch.float64)
    if calibration.regression:
        ridge = Ridge(alpha=1.0, fit_intercept=fit_bias).fit(x, y)
        weight[0] = torch.as_tensor(ridge.coef_).reshape(-1)
        bias[0] = float(ridge.intercept_) if fit_bias else 0.0
    else:
        if len(set(y.tolist())) < 2:
            raise CompressionError(
                "the calibration samples hold a single class; a linear probe needs at least two.",
                "Use more --calib-samples or a different --seed.",
            )
        probe = LogisticRegression(max_iter=1000, fit_intercept=fit_bias).fit(x, y)
        coef = torch.as_tensor(probe.coef_, dtype=torch.float64)
        intercept = torch.as_tensor(probe.intercept_, dtype=torch.float64)
        classes = [int(value) for value in probe.classes_]
        if len(classes) == 2:
            # Binary logistic regression gives one logit, log p(c1)/p(c0); split it across the two rows.
            weight[classes[1]], weight[classes[0]] = coef[0] / 2, -coef[0] / 2
            bias[classes[1]], bias[classes[0]] = intercept[0] / 2, -intercept[0] / 2
        else:
            for row, label in enumerate(classes):
                weight[label], bias[label] = coef[row], intercept[row]
    with torch.no_grad():
        layer.weight.copy_(weight.to(layer.weight.dtype))
        if layer.bias is not None:
            layer.bias.copy_(bias.to(layer.bias.dtype))
    return name
