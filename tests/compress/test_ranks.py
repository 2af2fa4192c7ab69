"""Rank and ratio handling: per-type ranks, break-even, --ratio, adasvd's budget, the linear probe."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from tuneyard.compress.compressor import compress_model
from tuneyard.compress.options import CompressOptions
from tuneyard.compress.ranks import break_even_rank, parse_rank, rank_for_ratio
from tuneyard.errors import CompressionError
from tuneyard.models.lowrank import LowRankLinear
from tuneyard.yard.root import Yard


def _run(tmp_path, model_dir, **options):  # type: ignore[no-untyped-def]
    return compress_model(CompressOptions(model=str(model_dir), **options), Yard.open(tmp_path))


def test_per_type_ranks_go_to_their_layers_and_name_the_folder(tmp_path, tiny_model):
    result = _run(tmp_path, tiny_model("llama"), rank="attn=3,ffn=9")
    assert result.path.name == "tiny-llama-l2-c2_standard_rattn3-ffn9"
    layers = result.info.layers
    assert {layer.rank for name, layer in layers.items() if "self_attn" in name} == {3}
    assert {layer.rank for name, layer in layers.items() if ".mlp." in name} == {9}
    assert result.info.ranks_by_type == {"attn": 3, "ffn": 9} and result.info.rank is None


def test_rank_at_break_even_keeps_the_layer_dense_and_says_so(tmp_path, tiny_model):
    # BERT tiny: 32x32 attention (break-even 16) and 64x32 / 32x64 FFN (break-even 22).
    result = _run(tmp_path, tiny_model("bert"), rank="16")
    dense = result.info.dense_layers
    assert all("attention" in name for name in dense)
    assert len(dense) == 8 and len(result.info.layers) == 4
    assert all("break-even 16" in reason for reason in dense.values())
    assert sum("stays dense" in note for note in result.notes) == 8
    assert isinstance(result.model.get_submodule("bert.encoder.layer.0.attention.self.query"), nn.Linear)
    assert isinstance(result.model.get_submodule("bert.encoder.layer.0.intermediate.dense"), LowRankLinear)


def test_ratio_keeps_about_that_fraction_of_compressible_weights(tmp_path, tiny_model):
    result = _run(tmp_path, tiny_model("gpt2"), ratio=0.5)
    assert result.path.name == "tiny-gpt2-l2-c2_standard_ratio0.5"
    kept = result.info.params.ratio
    assert 0.45 < kept <= 0.5
    for layer in result.info.layers.values():
        assert layer.rank == rank_for_ratio(tuple(layer.shape), 0.5)


@pytest.mark.parametrize("budget_option", [{"ratio": 0.4}, {"rank": "6"}])
def test_adasvd_spends_the_global_budget_with_varied_ranks(
    tmp_path, tiny_model, sentiment_data, budget_option
):
    result = _run(
        tmp_path,
        tiny_model("bert", layers=2),
        method="adasvd",
        data=str(sentiment_data),
        calib_samples=64,
        **budget_option,
    )
    layers = result.info.layers
    spent = sum(layer.params_after for layer in layers.values())
    budget = (
        int(0.4 * result.info.params.compressible_before)
        if "ratio" in budget_option
        else sum(6 * sum(layer.shape) for layer in layers.values())
    )
    assert spent <= budget
    assert spent > budget - max(sum(layer.shape) for layer in layers.values())
    assert len({layer.rank for layer in layers.values()}) > 1
    assert all(1 <= layer.rank < break_even_rank(tuple(layer.shape)) for layer in layers.values())
    saved = json.loads((result.path / "compression_info.json").read_text())["layers"]
    assert {name: layer["rank"] for name, layer in saved.items()} == {
        n: info.rank for n, info in layers.items()
    }


def test_fwsvd_on_a_headless_encoder_fits_a_linear_probe_first(tmp_path, tiny_model, sentiment_data):
    from transformers import AutoModel, AutoTokenizer

    headless = tmp_path / "tiny-encoder"
    AutoModel.from_pretrained(tiny_model("bert")).save_pretrained(headless)
    AutoTokenizer.from_pretrained(tiny_model("bert")).save_pretrained(headless)
    result = _run(tmp_path, headless, method="fwsvd", rank="8", data=str(sentiment_data), calib_samples=96)
    assert result.info.head == "linear_probe"
    assert any("linear probe" in note for note in result.notes)
    assert type(result.model).__name__ == "BertForSequenceClassification"
    saved = json.loads((result.path / "compression_info.json").read_text())
    assert saved["head"] == "linear_probe"
    assert result.model.config.id2label == {0: "0", 1: "1"}


def test_headless_encoder_with_standard_and_no_task_keeps_its_class(tmp_path, tiny_model):
    from transformers import AutoModel, AutoTokenizer

    headless = tmp_path / "tiny-encoder"
    AutoModel.from_pretrained(tiny_model("bert")).save_pretrained(headless)
    AutoTokenizer.from_pretrained(tiny_model("bert")).save_pretrained(headless)
    result = _run(tmp_path, headless, rank="4")
    assert type(result.model).__name__ == "BertModel" and result.info.head == "none"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0", "below 1"),
        ("-3", "below 1"),
        ("x", "not a whole number"),
        ("attn=4,mlp=8", "unknown module type"),
    ],
)
def test_bad_rank_text_is_refused(text, message):
    with pytest.raises(CompressionError, match=message):
        parse_rank(text)


def test_rank_spec_labels():
    assert parse_rank("64").label == "64"
    assert parse_rank("ffn=240,attn=40").label == "attn40-ffn240"
    with pytest.raises(CompressionError, match="no rank for 'ffn'"):
        parse_rank("attn=4").for_type("ffn")


def test_lowrank_factors_keep_the_model_dtype(tmp_path, tiny_model):
    result = _run(tmp_path, tiny_model("roberta"), rank="4")
    layer = result.model.get_submodule("roberta.encoder.layer.1.output.dense")
    assert isinstance(layer, LowRankLinear) and layer.left.dtype == torch.float32
