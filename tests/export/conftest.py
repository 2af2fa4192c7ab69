"""Decoders llama.cpp recognises: tiny random models of each family with SmolLM2's real tokenizer."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

import pytest


@cache
def smol_tokenizer() -> Any:
    """SmolLM2's real tokenizer, read from its GGUF once (seconds): a GPT-2 style BPE with a chat template."""
    from transformers import AutoTokenizer

    from tuneyard.models.gguf import packaged_gguf

    gguf = packaged_gguf()
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=str(gguf))


def build_smol_decoder(
    folder: Path, model_type: str = "llama", hidden: int = 32, intermediate: int = 64, **overrides: object
) -> Path:
    """A random 2-layer ``model_type`` decoder (tests/tiny_configs.py) with SmolLM2's real tokenizer.

    llama.cpp's converter recognises SmolLM2's tokenizer by its behaviour, whatever the
    family; ``overrides`` are config fields. No padding id: SmolLM2 pads with its
    end-of-turn token, and an embedding's padding row never learns (a fine-tuned model
    would not learn to stop).
    """
    import torch
    from tiny_configs import tiny_config
    from transformers import AutoModelForCausalLM

    tokenizer = smol_tokenizer()
    config = tiny_config(model_type, 2, 2, tokenizer)
    heads = config.num_attention_heads
    config.update({
        "vocab_size": len(tokenizer), "hidden_size": hidden, "intermediate_size": intermediate,
        "head_dim": hidden // heads, "max_position_embeddings": 256, "pad_token_id": None,
        "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id, **overrides,
    })  # fmt: skip
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():  # weights F16 holds exactly: an F16 export differs only in llama.cpp's arithmetic
        for parameter in model.parameters():
            parameter.copy_(parameter.half().float())
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


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
