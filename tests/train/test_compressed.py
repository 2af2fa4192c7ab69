"""Fine-tuning compressed models: every low-rank factor trains (or none, with --freeze-factors)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tuneyard.yard.root import Yard

ARCHS = ("bert", "roberta", "modernbert", "gpt2", "llama")


@pytest.fixture(scope="module")
def compressed(tiny_model, tmp_path_factory) -> Callable[..., Path]:  # type: ignore[no-untyped-def]
    """Factory: a tiny model of ``arch`` compressed with standard SVD at rank 4 (``bare``: no head)."""
    from transformers import AutoModel

    from tuneyard.compress.compressor import compress_model
    from tuneyard.compress.options import CompressOptions

    yard = Yard.open(tmp_path_factory.mktemp("compressed_yard"))
    made: dict[tuple[str, bool], Path] = {}

    def make(arch: str, bare: bool = False) -> Path:
        if (arch, bare) not in made:
            source = tiny_model(arch)
            if bare:  # the encoder alone, as sentence-embedding checkpoints ship
                source = tmp_path_factory.mktemp("bare") / f"tiny-{arch}-encoder"
                AutoModel.from_pretrained(tiny_model(arch)).save_pretrained(source)
                for name in ("tokenizer.json", "tokenizer_config.json"):
                    shutil.copy(tiny_model(arch) / name, source / name)
            result = compress_model(CompressOptions(model=str(source), method="standard", rank=4), yard)
            made[(arch, bare)] = result.path
        return made[(arch, bare)]

    return make


def factor_keys(weights: dict[str, torch.Tensor]) -> set[str]:
    return {key for key in weights if key.endswith((".left", ".right"))}


@pytest.mark.parametrize("arch", ARCHS)
def test_every_factor_receives_a_gradient(compressed, topics, arch: str) -> None:
    from transformers import DataCollatorWithPadding

    from tuneyard.models.checkpoint import describe_checkpoint
    from tuneyard.models.layout import layout_of
    from tuneyard.models.lowrank import lowrank_layers
    from tuneyard.task_types import get_task_type
    from tuneyard.task_types.base import LoadSettings
    from tuneyard.task_types.data_loading import load_task_data
    from tuneyard.task_types.sequence_classification.encoding import tokenize_task
    from tuneyard.task_types.sequence_classification.model import load_model, load_tokenizer
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.strategies import STRATEGIES

    parent = describe_checkpoint(str(compressed(arch)))
    assert parent.compressed and parent.method == "standard"
    data = load_task_data(data_dir=topics)
    model = load_model(parent, data.spec, reset_head=False, seed=0, settings=LoadSettings())
    options = FinetuneOptions(checkpoint=parent.source, data=str(topics))
    model = STRATEGIES["lowrank"].apply(model, options, layout_of(model), get_task_type())
    tokenizer = load_tokenizer(parent)
    batch = DataCollatorWithPadding(tokenizer)(
        list(tokenize_task(data, tokenizer, 32)["train"].select(range(8)))
    )
    model.train()
    model(**batch).loss.backward()

    layers = dict(lowrank_layers(model))
    assert len(layers) == 2 * len(layout_of(model).compressible)  # two blocks, every compressible linear
    for name, layer in layers.items():
        for factor in ("left", "right"):
            grad = getattr(layer, factor).grad
            assert grad is not None and grad.abs().sum() > 0, f"{name}.{factor} got no gradient"
    frozen = [name for name, parameter in model.named_parameters() if not parameter.requires_grad]
    assert frozen and all(
        parameter.grad is None for name, parameter in model.named_parameters() if name in frozen
    )


def test_fine_tuning_changes_every_factor_and_files_by_method(cli, compressed, topics, tmp_path) -> None:
    import tuneyard
    from tuneyard.models.lowrank import LowRankLinear

    parent = compressed("bert")
    result = cli(
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        parent,
        "--data",
        topics,
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--learning-rate",
        "1e-2",
        "-q",
    )
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip())
    assert run == tmp_path / "models" / "finetuned" / "bert" / "standard" / parent.name
    assert "strategy lowrank" in result.stderr

    before, after = (
        load_file(str(parent / "model.safetensors")),
        load_file(str(run / "last" / "model.safetensors")),
    )
    assert set(before) == set(after)
    factors = factor_keys(before)
    assert len(factors) == 24
    unchanged = sorted(key for key in factors if before[key].equal(after[key]))
    assert not unchanged, f"factors that did not train: {unchanged}"
    others = {key for key in before if key not in factors and not key.startswith("classifier.")}
    assert all(before[key].equal(after[key]) for key in others)

    manifest = json.loads((run / "manifest.json").read_text())
    assert (manifest["kind"], manifest["method"], manifest["rank"], manifest["strategy"]) == (
        "finetuned",
        "standard",
        4,
        "lowrank",
    )
    parent_id = json.loads((parent / "manifest.json").read_text())["id"]
    assert manifest["parents"] == [{"id": parent_id, "path": str(parent), "role": "init"}]
    reloaded = tuneyard.load(run / "best")
    assert sum(isinstance(module, LowRankLinear) for module in reloaded.modules()) == 12
    info = json.loads((run / "best" / "compression_info.json").read_text())
    assert info["model_class"] == "BertForSequenceClassification" and info["method"] == "standard"
    checkpoint = next(run.glob("checkpoint-*"))  # best/ shares the checkpoint's weights, not a copy
    assert (run / "best" / "model.safetensors").samefile(checkpoint / "model.safetensors")


def test_freeze_factors_trains_everything_but_the_factors(cli, compressed, topics, tmp_path) -> None:
    parent = compressed("bert")
    result = cli(
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        parent,
        "--data",
        topics,
        "--epochs",
        "1",
        "--batch-size",
        "8",
        "--learning-rate",
        "1e-2",
        "--freeze-factors",
        "-q",
    )
    assert result.exit_code == 0, result.stderr
    before = load_file(str(parent / "model.safetensors"))
    after = load_file(str(Path(result.stdout.strip()) / "last" / "model.safetensors"))
    factors = factor_keys(before)
    assert all(before[key].equal(after[key]) for key in factors)
    changed = {key for key in before if key not in factors and not before[key].equal(after[key])}
    assert "bert.embeddings.word_embeddings.weight" in changed
    assert any(key.endswith("attention.self.query.bias") for key in changed)


def test_compressed_encoder_without_head_gets_one(cli, compressed, topics, tmp_path) -> None:
    import tuneyard

    parent = compressed("bert", bare=True)
    result = cli(
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        parent,
        "--data",
        topics,
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "-q",
    )
    assert result.exit_code == 0, result.stderr
    best = Path(result.stdout.strip()) / "best"
    model = tuneyard.load(best)
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.id2label == {0: "cooking", 1: "sports"}


def test_lora_on_a_compressed_model_is_refused(cli, compressed, topics, tmp_path) -> None:
    result = cli(
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        compressed("bert"),
        "--data",
        topics,
        "--strategy",
        "lora",
    )
    assert result.exit_code == 2
    assert "--strategy lora does not apply to a compressed model" in result.stderr
