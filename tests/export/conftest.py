"""Decoders llama.cpp recognises: tiny random LLaMAs with SmolLM2's real tokenizer (from its GGUF)."""

from __future__ import annotations

from pathlib import Path

import pytest
from smol_llama import build_smol_llama


@pytest.fixture(scope="session")
def smol_decoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LLaMA (hidden size 32) with SmolLM2's tokenizer, which llama.cpp recognises."""
    return build_smol_llama(tmp_path_factory.mktemp("models") / "tiny-smol", hidden=32, intermediate=64)


@pytest.fixture(scope="session")
def smol_decoder_256(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same at hidden size 256: rows of 256 weights, the block k-quants (q4_K, q6_K) need."""
    return build_smol_llama(tmp_path_factory.mktemp("models") / "smol-256", hidden=256, intermediate=512)
