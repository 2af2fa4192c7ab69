"""Shipping a model: ``merge`` folds a LoRA adapter (or low-rank factors) into plain dense weights."""
