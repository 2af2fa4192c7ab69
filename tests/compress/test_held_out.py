"""The held-out output error: compressed vs dense last hidden states, real tokens only."""

from __future__ import annotations

import json
import math

import pytest
import torch

import tuneyard
from tuneyard.compress.compressor import compress_model
from tuneyard.compress.options import CompressOptions
from tuneyard.models.loading import load_tokenizer
from tuneyard.yard.root import Yard


def _validation_texts(data_dir):  # type: ignore[no-untyped-def]
    import csv

    with open(data_dir / "validation.csv", newline="") as handle:
        return [row["text"] for row in csv.DictReader(handle)]


def _direct_error(dense, compressed, tokenizer, texts, padded: bool) -> float:  # type: ignore[no-untyped-def]
    """The error computed by hand: over real tokens, or (padded=True) over every position."""
    inputs = tokenizer(texts, padding="max_length", max_length=32, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        reference = dense(**inputs, output_hidden_states=True).hidden_states[-1]
        states = compressed(**inputs, output_hidden_states=True).hidden_states[-1]
    if not padded:
        mask = inputs["attention_mask"].bool()
        reference, states = reference[mask], states[mask]
    return math.sqrt(float((states - reference).pow(2).sum() / reference.pow(2).sum()))


def test_output_error_counts_real_tokens_only_and_is_filed(tmp_path, tiny_model, sentiment_data):
    model_dir = tiny_model("bert")
    result = compress_model(
        CompressOptions(
            model=str(model_dir),
            method="whiten",
            rank=4,
            data=str(sentiment_data),
            calib_samples=32,
            held_out_samples=32,
            max_length=32,
        ),
        Yard.open(tmp_path),
    )
    metrics = json.loads((result.path / "manifest.json").read_text())["metrics"]
    assert metrics["held_out_rows"] == 32
    tokenizer = load_tokenizer(model_dir)
    from transformers import AutoModelForSequenceClassification

    dense = AutoModelForSequenceClassification.from_pretrained(model_dir, num_labels=2).eval()
    texts = _validation_texts(sentiment_data)
    expected = _direct_error(dense, tuneyard.load(result.path), tokenizer, texts, padded=False)
    padded = _direct_error(dense, tuneyard.load(result.path), tokenizer, texts, padded=True)
    assert metrics["output_error"] == pytest.approx(expected, rel=1e-3)
    assert padded != pytest.approx(expected, rel=1e-2)  # padding positions would change the figure
    assert ("output error", 0.0, metrics["output_error"]) in result.held_out
