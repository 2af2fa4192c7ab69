"""Decoders llama.cpp recognises: tiny random LLaMAs with SmolLM2's real tokenizer (from its GGUF).

Shared by the export tests (``tests/export/conftest.py``) and the GPU tests.
"""

from __future__ import annotations

from pathlib import Path


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
