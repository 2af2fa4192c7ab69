"""Decoders llama.cpp recognises: tiny random LLaMAs with SmolLM2's real tokenizer (from its GGUF)."""

from __future__ import annotations

from pathlib import Path

import pytest


def build_smol_llama(folder: Path, hidden: int, intermediate: int) -> Path:
    """A random 2-layer LLaMA of the given widths with SmolLM2's real tokenizer (from its GGUF)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from tuneyard.models.gguf import packaged_gguf

    gguf = packaged_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=str(gguf))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, head_dim=hidden // 2, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def smol_decoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LLaMA (hidden size 32) with SmolLM2's tokenizer, which llama.cpp recognises."""
    return build_smol_llama(tmp_path_factory.mktemp("models") / "tiny-smol", hidden=32, intermediate=64)


@pytest.fixture(scope="session")
def smol_decoder_256(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same at hidden size 256: rows of 256 weights, the block k-quants (q4_K, q6_K) need."""
    return build_smol_llama(tmp_path_factory.mktemp("models") / "smol-256", hidden=256, intermediate=512)
