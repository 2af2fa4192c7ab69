"""LowRankLinear: what it computes, that every factor trains, and GPT-2 Conv1D replacement."""

from __future__ import annotations

import torch
from torch import nn

from tuneyard.models.layout import layout_of
from tuneyard.models.lowrank import (
    LowRankLinear,
    compressible_modules,
    install_empty_lowrank,
    linear_weight,
    replace_module,
)


def test_forward_is_x_times_the_product_of_the_factors_plus_bias():
    torch.manual_seed(0)
    left, right, bias = torch.randn(5, 3), torch.randn(3, 7), torch.randn(5)
    layer = LowRankLinear.from_factors(left, right, bias)
    x = torch.randn(2, 4, 7)
    assert torch.allclose(layer(x), x @ (left @ right).T + bias, atol=1e-5)
    assert layer.num_weights() == 5 * 3 + 3 * 7 + 5
    assert torch.equal(layer.dense_weight(), left @ right)


def test_every_factor_gets_a_gradient():
    layer = LowRankLinear(8, 6, rank=2)
    loss = layer(torch.randn(4, 8)).pow(2).sum()
    loss.backward()
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert {name for name, _ in layer.named_parameters()} == {"left", "right", "bias"}


def test_a_rank_near_break_even_runs_one_dense_product_at_inference_and_follows_updates():
    torch.manual_seed(0)
    layer = LowRankLinear(16, 16, rank=8)  # factors hold 256 weights, the dense layer 256
    thin = LowRankLinear(16, 16, rank=2)
    assert layer.runs_dense and not thin.runs_dense
    x = torch.randn(3, 16)
    with torch.no_grad():
        before = layer(x)
        assert torch.allclose(before, x @ layer.dense_weight().T + layer.bias, atol=1e-5)
        layer.left.add_(1.0)  # an optimizer step changes a factor in place
        after = layer(x)
    assert torch.allclose(after, x @ layer.dense_weight().T + layer.bias, atol=1e-5)
    assert not torch.allclose(before, after)
    with torch.inference_mode():
        assert torch.allclose(layer(x), after, atol=1e-6)
    layer(x).sum().backward()  # with gradients recorded it trains through the factors
    assert layer.left.grad is not None and layer.right.grad is not None


def test_no_bias_layer_has_no_bias_parameter():
    layer = LowRankLinear(8, 6, rank=2, bias=False)
    assert layer.bias is None and layer(torch.randn(1, 8)).shape == (1, 6)


def test_gpt2_conv1d_is_found_read_as_out_by_in_and_replaced(tiny_model):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_model("gpt2")).eval()
    modules = compressible_modules(model, layout_of(model))
    assert set(modules) == {
        f"transformer.h.{i}.{suffix}"
        for i in range(2)
        for suffix in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    }
    name = "transformer.h.0.attn.c_attn"
    conv = modules[name]
    weight = linear_weight(conv)
    assert weight.shape == (96, 32)  # Conv1D stores (in, out) = (32, 96)
    x = torch.randn(3, 32)
    # A full-rank factorisation reproduces the Conv1D exactly (up to float rounding).
    u, s, vh = torch.linalg.svd(weight.detach(), full_matrices=False)
    layer = LowRankLinear.from_factors(u * s, vh, conv.bias)
    assert torch.allclose(layer(x), conv(x), atol=1e-5)
    replace_module(model, name, layer)
    assert model.get_submodule(name) is layer


def test_classifier_heads_and_embeddings_stay_out_of_the_compressible_set(tiny_model):
    from transformers import AutoModelForSequenceClassification

    heads = {
        "bert": "classifier",
        "roberta": "classifier.dense",
        "modernbert": "head.dense",
        "gpt2": "score",
        "llama": "score",
    }
    for arch, head in heads.items():
        model = AutoModelForSequenceClassification.from_pretrained(tiny_model(arch))
        layout = layout_of(model)
        names = compressible_modules(model, layout)
        assert head not in names and "bert.pooler.dense" not in names
        # Every block layer of the layout names a real module in each of the 2 layers.
        for relative in layout.compressible:
            assert sum(name.endswith("." + relative) for name in names) >= 2, (arch, relative)
        types = [layout.module_type(name) for name in names]
        assert types.count("attn") == 2 * len(layout.attention) and types.count("ffn") == 2 * len(layout.ffn)
        assert len(names) == 2 * len(layout.compressible), arch
        assert {layout.layer_number(name) for name in names} == {0, 1}


def test_install_empty_lowrank_keeps_shapes_and_bias():
    model = nn.Sequential(nn.Linear(10, 6), nn.ReLU(), nn.Linear(6, 4, bias=False))
    install_empty_lowrank(model, {"0": 3, "2": 2})
    assert isinstance(model[0], LowRankLinear) and model[0].left.shape == (6, 3) and model[0].bias is not None
    assert isinstance(model[2], LowRankLinear) and model[2].right.shape == (2, 6) and model[2].bias is None
