"""Decoders llama.cpp recognises: tiny random models of each family with SmolLM2's real tokenizer.

Shared by the export tests (``tests/export/conftest.py``) and the GPU tests.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any


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
