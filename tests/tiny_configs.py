"""Configs of tiny models for every family the tests cover: 2 heads, hidden size 32, real code paths.

A module of its own (not conftest.py) so any test folder can import it: a sub-folder's
``conftest`` shadows the top-level one for ``from conftest import ...``.
"""

from __future__ import annotations

TINY_ARCHS = ("bert", "roberta", "modernbert", "gpt2", "llama")
# The families people fine-tune most, beyond TINY_ARCHS: every verb runs on each (tests/test_families.py).
MORE_DECODERS = ("qwen2", "qwen3", "mistral", "gemma3_text", "phi3", "olmo2")
MORE_ENCODERS = ("distilbert", "deberta-v2", "xlm-roberta", "electra")
DECODER_SHAPE = {"num_key_value_heads": 2, "max_position_embeddings": 128, "head_dim": 16}


def tiny_config(arch: str, num_labels: int, layers: int, tokenizer, **sizes: object):  # type: ignore[no-untyped-def]
    """A transformers config of ``arch`` with 2 heads, hidden size 32, ``layers`` layers (``sizes``
    replaces any of these fields, or sets others: ``hidden_size=1024, tie_word_embeddings=True``)."""
    from transformers import AutoConfig

    common = {
        "num_labels": num_labels,
        "vocab_size": tokenizer.vocab_size,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.cls_token_id,
        "eos_token_id": tokenizer.sep_token_id,
        "cls_token_id": tokenizer.cls_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "hidden_size": 32,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    }
    extra: dict[str, object] = {
        "bert": {"max_position_embeddings": 128},
        "roberta": {"max_position_embeddings": 130},
        "modernbert": {
            "max_position_embeddings": 128,
            "global_attn_every_n_layers": 2,
            "local_attention": 16,
        },
        "gpt2": {"n_positions": 128},
        "llama": {"num_key_value_heads": 2, "max_position_embeddings": 128, "head_dim": 16},
        **{decoder: DECODER_SHAPE for decoder in ("qwen2", "qwen3", "mistral", "olmo2")},
        "gemma3_text": DECODER_SHAPE | {"sliding_window": 16, "query_pre_attn_scalar": 16},
        "phi3": DECODER_SHAPE | {"original_max_position_embeddings": 128},
        "distilbert": {"max_position_embeddings": 128, "hidden_dim": 64},
        "deberta-v2": {
            "max_position_embeddings": 128,
            "relative_attention": True,  # as DeBERTa-v3 ships: disentangled attention, shared keys
            "pos_att_type": ["p2c", "c2p"],
            "position_buckets": 32,
            "norm_rel_ebd": "layer_norm",
            "share_att_key": True,
            "type_vocab_size": 0,
        },
        "xlm-roberta": {"max_position_embeddings": 130},
        "electra": {"max_position_embeddings": 128, "embedding_size": 32},
    }[arch]
    return AutoConfig.for_model(arch, **{**common, **extra, **sizes})
