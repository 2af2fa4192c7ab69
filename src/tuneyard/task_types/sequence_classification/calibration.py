"""Classification calibration: length-sorted token batches, and a linear probe for headless bases."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tuneyard.errors import CompressionError

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.components.calibration import Batch, CalibrationSet
    from tuneyard.data.tasks import TaskSpec


def tokenized_batches(
    tokenizer: Any, rows: Dataset, spec: TaskSpec, batch_size: int, max_length: int
) -> list[Batch]:
    """Rows tokenised, sorted by length and padded per batch, so little compute goes to padding.

    The statistics skip padding tokens anyway; sorting only saves the forward passes' work.
    Batches carry ``labels`` only when every row has one (unlabelled rows hold -1).
    """
    columns = rows[:]
    labels = list(columns["label"])
    labelled = bool(labels) and all(label is not None and label != -1 for label in labels)
    regression = spec.problem == "regression"
    encoded = tokenizer(columns["text"], columns.get("text_pair"), truncation=True, max_length=max_length)
    order = sorted(range(len(columns["text"])), key=lambda index: len(encoded["input_ids"][index]))
    batches = []
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        features = [{key: values[index] for key, values in encoded.items()} for index in chosen]
        batch: Batch = dict(tokenizer.pad(features, return_tensors="pt"))
        if labelled:
            batch["labels"] = torch.tensor(
                [labels[index] for index in chosen], dtype=torch.float32 if regression else torch.long
            )
        batches.append(batch)
    return batches


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
        raise CompressionError(
            f"{type(model).__name__} has no classification head with {num_labels} outputs."
        )
    return found[-1]


def fit_linear_probe(model: nn.Module, calibration: CalibrationSet) -> str:
    """Fit the head's last linear layer on frozen features (logistic / ridge regression).

    Fisher weights come from the task loss's gradients; with a randomly initialised
    head those gradients would measure noise, so a base model without a trained head
    first gets a probe fitted on the calibration data. Returns the layer's name.
    """
    from sklearn.linear_model import LogisticRegression, Ridge

    regression = calibration.spec.problem == "regression"
    name, layer = head_output_layer(model, calibration.spec.num_labels)
    features: list[torch.Tensor] = []
    handle = layer.register_forward_pre_hook(
        lambda _module, inputs: features.append(inputs[0].detach().float())
    )
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
    if regression:
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
