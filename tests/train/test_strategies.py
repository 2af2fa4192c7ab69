"""Which parameters each strategy trains, asserted name by name on tiny models of every family."""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneyard.errors import TrainingError
from tuneyard.models.layout import layout_of
from tuneyard.task_types import get_task_type
from tuneyard.train.layers import parse_layers
from tuneyard.train.options import FinetuneOptions
from tuneyard.train.strategies import STRATEGIES, parameter_counts, strategy_for

ARCHS = ("bert", "roberta", "modernbert", "gpt2", "llama")

# What a user of each family expects: the head's parameters, the blocks' path, the linear layers.
HEAD_PARAMETERS = {
    "bert": {"classifier.weight", "classifier.bias"},
    "roberta": {
        "classifier.dense.weight",
        "classifier.dense.bias",
        "classifier.out_proj.weight",
        "classifier.out_proj.bias",
    },
    "modernbert": {"head.dense.weight", "head.norm.weight", "classifier.weight", "classifier.bias"},
    "gpt2": {"score.weight"},
    "llama": {"score.weight"},
}
BLOCKS = {
    "bert": "bert.encoder.layer",
    "roberta": "roberta.encoder.layer",
    "modernbert": "model.layers",
    "gpt2": "transformer.h",
    "llama": "model.layers",
}
_BERT_LINEARS = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "intermediate.dense",
    "output.dense",
)
LINEARS = {
    "bert": _BERT_LINEARS,
    "roberta": _BERT_LINEARS,
    "modernbert": ("attn.Wqkv", "attn.Wo", "mlp.Wi", "mlp.Wo"),
    "gpt2": ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"),
    "llama": (
        "self_attn.q_proj",
        "self_attn.k_proj",
        "self_attn.v_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.up_proj",
        "mlp.down_proj",
    ),
}


def load(folder: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(folder)


def options(**fields: object) -> FinetuneOptions:
    return FinetuneOptions(checkpoint="unused", task="sst2", **fields)  # type: ignore[arg-type]


def trainable(model) -> set[str]:  # type: ignore[no-untyped-def]
    return {name for name, parameter in model.named_parameters() if parameter.requires_grad}


@pytest.mark.parametrize("arch", ARCHS)
def test_full_trains_every_parameter(tiny_model, arch: str) -> None:
    model = load(tiny_model(arch))
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    model = STRATEGIES["full"].apply(model, options(strategy="full"), layout_of(model), get_task_type())
    assert trainable(model) == {name for name, _ in model.named_parameters()}


@pytest.mark.parametrize("arch", ARCHS)
def test_frozen_trains_only_the_head(tiny_model, arch: str) -> None:
    model = load(tiny_model(arch))
    model = STRATEGIES["frozen"].apply(model, options(strategy="frozen"), layout_of(model), get_task_type())
    assert trainable(model) == HEAD_PARAMETERS[arch]
    count, total = parameter_counts(model)
    assert 0 < count < total


@pytest.mark.parametrize("arch", ARCHS)
def test_lora_on_chosen_layers_trains_adapters_there_and_the_head(tiny_model, arch: str) -> None:
    model = load(tiny_model(arch, layers=3))
    peft_model = STRATEGIES["lora"].apply(
        model, options(strategy="lora", lora={"layers": "0,2"}), layout_of(model), get_task_type()
    )
    adapters = {
        f"base_model.model.{BLOCKS[arch]}.{layer}.{linear}.lora_{side}.default.weight"
        for layer in (0, 2)
        for linear in LINEARS[arch]
        for side in "AB"
    }
    head = set()
    for name in HEAD_PARAMETERS[arch]:
        module, _, leaf = name.partition(".")
        head.add(f"base_model.model.{module}.modules_to_save.default.{leaf}")
    assert trainable(peft_model) == adapters | head
    assert not any(
        f"{BLOCKS[arch]}.1." in name and "lora" in name for name, _ in peft_model.named_parameters()
    )


def test_lora_custom_targets_limit_the_adapted_modules(tiny_model) -> None:
    model = load(tiny_model("bert"))
    peft_model = STRATEGIES["lora"].apply(
        model,
        options(strategy="lora", lora={"targets": ["query", "value"], "layers": "1"}),
        layout_of(model),
        get_task_type(),
    )
    adapted = {name.split(".lora_")[0] for name in trainable(peft_model) if ".lora_" in name}
    assert adapted == {
        "base_model.model.bert.encoder.layer.1.attention.self.query",
        "base_model.model.bert.encoder.layer.1.attention.self.value",
    }


def test_lora_layer_beyond_the_model_is_refused(tiny_model) -> None:
    model = load(tiny_model("bert"))
    with pytest.raises(TrainingError) as caught:
        STRATEGIES["lora"].apply(
            model,
            options(strategy="lora", lora={"layers": "40"}),
            layout_of(model),
            get_task_type(),
        )
    assert "names layer 40, but the model has 2 layers" in caught.value.message
    assert caught.value.hint == "Use layers 0-1."


@pytest.mark.parametrize(
    ("spec", "layers"),
    [("0,1,2", [0, 1, 2]), ("7-12", [7, 8, 9, 10, 11, 12]), ("0,4-6", [0, 4, 5, 6]), (" 3 , 1 ", [1, 3])],
)
def test_layer_specs(spec: str, layers: list[int]) -> None:
    assert parse_layers(spec) == layers


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("a", "'a' is not a layer number"),
        ("5-2", "runs backwards"),
        (",", "names no layer"),
        ("1-x", "'1-x' is not"),
    ],
)
def test_bad_layer_specs(spec: str, message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        parse_layers(spec)


def test_default_strategy_depends_on_compression() -> None:
    assert strategy_for(None, compressed=False).NAME == "full"
    assert strategy_for(None, compressed=True).NAME == "lowrank"


def test_lowrank_on_a_plain_model_is_refused(tiny_model) -> None:
    model = load(tiny_model("bert"))
    with pytest.raises(TrainingError, match="needs a compressed model"):
        STRATEGIES["lowrank"].apply(model, options(strategy="lowrank"), layout_of(model), get_task_type())


@pytest.mark.parametrize(
    ("targets", "adapted"),
    [(["attn"], ("attn.c_attn", "attn.c_proj")), (["mlp"], ("mlp.c_fc", "mlp.c_proj"))],
)
def test_lora_targets_by_kind_adapt_that_part_of_each_block(tiny_model, targets, adapted) -> None:
    model = load(tiny_model("gpt2"))
    peft_model = STRATEGIES["lora"].apply(
        model, options(strategy="lora", lora={"targets": targets}), layout_of(model), get_task_type()
    )
    found = {name.split(".lora_")[0] for name in trainable(peft_model) if ".lora_" in name}
    assert found == {
        f"base_model.model.transformer.h.{block}.{linear}" for block in (0, 1) for linear in adapted
    }


@pytest.mark.parametrize(("kind", "layers"), [("mlp", None), ("mlp", "1"), ("attn", None)])
def test_a_kind_adapts_only_its_layers_when_one_name_ends_another(tiny_model, kind, layers) -> None:
    # BERT's MLP output is "output.dense", the end of its attention's "attention.output.dense":
    # PEFT matches names as suffixes, so the MLP's name alone would adapt the attention's too.
    model = load(tiny_model("bert"))
    layout = layout_of(model)
    lora = {"targets": [kind], "layers": layers}
    peft_model = STRATEGIES["lora"].apply(model, options(strategy="lora", lora=lora), layout, get_task_type())
    found = {name.split(".lora_")[0] for name in trainable(peft_model) if ".lora_" in name}
    blocks = (0, 1) if layers is None else (1,)
    assert found == {
        f"base_model.model.bert.encoder.layer.{block}.{linear}"
        for block in blocks
        for linear in layout.targets(kind)
    }


def test_lora_targets_the_model_lacks_name_its_block_layers(tiny_model) -> None:
    model = load(tiny_model("llama"))
    with pytest.raises(TrainingError) as caught:
        STRATEGIES["lora"].apply(
            model, options(strategy="lora", lora={"targets": ["query"]}), layout_of(model), get_task_type()
        )
    assert "attn, mlp, all-linear" in (caught.value.hint or "") and "self_attn.q_proj" in caught.value.hint


def test_every_strategy_in_the_table_is_a_choice_of_the_options() -> None:
    from typing import get_args

    from tuneyard.train.options import StrategyName

    assert set(get_args(StrategyName)) == set(STRATEGIES)


def test_adapter_on_a_text_model_is_lora_of_its_width_on_the_mlp_layers(tiny_model) -> None:
    # GPT-2's blocks have no slot for transformers' attention adapters (only pre-LayerNorm speech
    # encoders do: tests/task_types/test_audio_classification.py), so PEFT LoRA goes on its MLP.
    model = load(tiny_model("gpt2"))
    peft_model = STRATEGIES["adapter"].apply(
        model, options(strategy="adapter", adapter={"dim": 4}), layout_of(model), get_task_type()
    )
    adapters = {
        f"base_model.model.transformer.h.{block}.mlp.{linear}.lora_{side}.default.weight"
        for block in (0, 1)
        for linear in ("c_fc", "c_proj")
        for side in "AB"
    }
    assert trainable(peft_model) == adapters | {"base_model.model.score.modules_to_save.default.weight"}
    assert peft_model.peft_config["default"].r == 4
