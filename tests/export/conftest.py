"""Decoders llama.cpp recognises: tiny random models of each family with SmolLM2's real tokenizer
(built by tests/smol_decoders.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from smol_decoders import build_smol_decoder


@pytest.fixture(scope="session")
def smol_decoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LLaMA (hidden size 32) with SmolLM2's tokenizer, which llama.cpp recognises."""
    folder = tmp_path_factory.mktemp("models") / "tiny-smol"
    return build_smol_decoder(folder, tie_word_embeddings=True)


@pytest.fixture(scope="session")
def smol_decoder_256(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same at hidden size 256: rows of 256 weights, the block k-quants (q4_K, q6_K) need."""
    folder = tmp_path_factory.mktemp("models") / "smol-256"
    return build_smol_decoder(folder, hidden=256, intermediate=512, tie_word_embeddings=True)


@pytest.fixture(scope="session")
def smol_family(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Factory: ``smol_family("qwen3")`` -> a cached tiny decoder of that family with SmolLM2's tokenizer."""
    cache: dict[str, Path] = {}

    def make(model_type: str) -> Path:
        if model_type not in cache:
            # Not named after the family: llama.cpp gives Phi-3's SentencePiece tokens ("</s>", ...)
            # special attributes when the model's name says "phi3", and fails where they are absent.
            folder = tmp_path_factory.mktemp(f"family-{len(cache)}") / "smol"
            cache[model_type] = build_smol_decoder(folder, model_type)
        return cache[model_type]

    return make
