"""A model's layout read from the model: it agrees with the family table it replaced.

The expectations are the hand-written table tuneyard had for five architectures (blocks,
attention and FFN layers); the derivation must find the same on the real transformers
classes, and refuse a model with no blocks.
"""

from __future__ import annotations

import pytest
from torch import nn

from tuneyard.errors import ModelError
from tuneyard.models.layout import layout_of
from tuneyard.task_types.model_loading import load

BERT = (
    ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense"),
    ("intermediate.dense", "output.dense"),
)
LLAMA = (
    ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj"),
    ("mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"),
)
TABLE = {  # arch: (blocks, layers_pattern, attention, ffn), as the family table listed them
    "bert": ("bert.encoder.layer", "layer", *BERT),
    "roberta": ("roberta.encoder.layer", "layer", *BERT),
    "modernbert": ("model.layers", "layers", ("attn.Wqkv", "attn.Wo"), ("mlp.Wi", "mlp.Wo")),
    "gpt2": ("transformer.h", "h", ("attn.c_attn", "attn.c_proj"), ("mlp.c_fc", "mlp.c_proj")),
    "llama": ("model.layers", "layers", *LLAMA),
}


@pytest.mark.parametrize("arch", sorted(TABLE))
def test_the_derived_layout_is_the_old_tables(tiny_model, arch: str) -> None:
    layout = layout_of(load(tiny_model(arch, layers=3)))
    blocks, pattern, attention, ffn = TABLE[arch]
    assert (layout.arch, layout.blocks, layout.layers_pattern, layout.num_blocks) == (
        arch,
        blocks,
        pattern,
        3,
    )
    assert (layout.attention, layout.ffn) == (attention, ffn)
    assert layout.module_type(f"{blocks}.2.{attention[-1]}") == "attn"
    assert layout.module_type(f"{blocks}.2.{ffn[-1]}") == "ffn"
    assert layout.layer_number(f"base_model.model.{blocks}.1.{ffn[0]}") == 1  # inside a PEFT wrapper too


def test_a_head_outside_the_blocks_is_no_block_layer(tiny_model) -> None:
    layout = layout_of(load(tiny_model("bert")))
    assert layout.module_type("bert.pooler.dense") is None and layout.layer_number("classifier") is None


def test_the_fused_projections_of_phi3_are_attention_and_mlp(tiny_decoder) -> None:
    layout = layout_of(load(tiny_decoder("phi3")))
    assert layout.attention == ("self_attn.o_proj", "self_attn.qkv_proj")
    assert layout.ffn == ("mlp.gate_up_proj", "mlp.down_proj")


def test_a_model_without_blocks_is_refused() -> None:
    with pytest.raises(ModelError, match="no stack of identical blocks") as caught:
        layout_of(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 2)))
    assert "AutoModel" in (caught.value.hint or "")
