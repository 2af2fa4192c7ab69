"""Every verb on the families people fine-tune most, through the real CLI.

Tiny random models built from each family's own transformers config (Qwen2, Qwen3,
Mistral, Gemma 3, Phi-3, OLMo2 decoders; DistilBERT, DeBERTa-v2, XLM-RoBERTa, ELECTRA
encoders). Nothing here names a family's module paths: they are read from the model
(``tuneyard.models.layout``), and each check says what a user of that family expects:
a full run and a LoRA run on block 0 only, an eval, a merge whose logits are the
adapter model's, and a compression at ratio 0.5 that reloads and computes the factors'
product. GGUF export of the decoders: tests/export/test_gguf_families.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from merged_outputs import logits, saved
from safetensors.torch import load_file
from tiny_configs import MORE_DECODERS, MORE_ENCODERS
from topic_data import write_topic_csvs

import tuneyard
from tuneyard.models.layout import layout_of

FAMILIES = MORE_DECODERS + MORE_ENCODERS
QUICK = ("--epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3", "--max-length", "96", "-q")


@pytest.fixture(scope="module")
def topics(tmp_path_factory: pytest.TempPathFactory) -> Path:
    labels = ("sports", "cooking", "travel")
    rows = {"train": 32, "validation": 16, "test": 16}
    return write_topic_csvs(tmp_path_factory.mktemp("data") / "topics", labels, rows)


@pytest.fixture
def family_case(request, tiny_decoder, tiny_model, chat_topics, topics) -> tuple[Path, Path]:  # type: ignore[no-untyped-def]
    """(model folder, data folder) for the family under test."""
    family = request.node.callspec.params["family"]
    if family in MORE_DECODERS:
        return tiny_decoder(family), chat_topics
    return tiny_model(family, num_labels=3), topics


@pytest.mark.parametrize("family", FAMILIES)
def test_full_and_block_0_lora_train_evaluate_and_merge(
    family: str, family_case: tuple[Path, Path], cli: Callable[..., object], tmp_path: Path
) -> None:
    checkpoint, data = family_case
    train = ("--yard", tmp_path, "finetune", "--checkpoint", checkpoint, "--data", data, *QUICK)
    full = saved(cli(*train, "--strategy", "full", "--name", "full"))
    assert json.loads((full / "manifest.json").read_text())["status"] == "complete"

    lora = saved(cli(*train, "--strategy", "lora", "--lora-layers", "0", "--name", "lora"))
    layout = layout_of(tuneyard.load(checkpoint))
    adapted = {
        key.split(".lora_A")[0]
        for key in load_file(str(lora / "best" / "adapter_model.safetensors"))
        if ".lora_A" in key
    }
    assert adapted == {f"base_model.model.{layout.blocks}.0.{linear}" for linear in layout.compressible}

    evaluated = cli("--yard", tmp_path, "eval", "--checkpoint", lora, "--data", data, "--split", "test", "-q")
    assert evaluated.exit_code == 0, evaluated.stderr
    assert json.loads((lora / "manifest.json").read_text())["metrics"]

    merged = saved(cli("--yard", tmp_path, "merge", "--checkpoint", lora))
    tokenizer = tuneyard.load_tokenizer(merged)
    assert torch.allclose(
        logits(tuneyard.load(merged), tokenizer), logits(tuneyard.load(lora), tokenizer), atol=1e-4
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_compression_at_half_reloads_as_its_factors_product(
    family: str, family_case: tuple[Path, Path], cli: Callable[..., object], tmp_path: Path
) -> None:
    checkpoint, data = family_case
    args = ("--method", "standard", "--ratio", "0.5", "--data", data, "-q")
    compressed = saved(cli("--yard", tmp_path, "compress", "--model", checkpoint, *args))
    info = json.loads((compressed / "compression_info.json").read_text())
    layout = layout_of(tuneyard.load(checkpoint))
    assert len(info["layers"]) == layout.num_blocks * len(layout.compressible)

    dense = saved(cli("--yard", tmp_path, "merge", "--checkpoint", compressed, "--dense"))
    factors = load_file(str(compressed / "model.safetensors"))
    weights = load_file(str(dense / "model.safetensors"))
    factored = [key.removesuffix(".left") for key in factors if key.endswith(".left")]
    assert factored, "no layer was factorised at ratio 0.5"
    for layer in factored:
        product = factors[f"{layer}.left"] @ factors[f"{layer}.right"]
        assert torch.allclose(weights[f"{layer}.weight"], product, atol=1e-6), layer
    tokenizer = tuneyard.load_tokenizer(compressed)
    assert torch.allclose(
        logits(tuneyard.load(compressed), tokenizer), logits(tuneyard.load(dense), tokenizer), atol=1e-4
    )
