"""GGUF export of the decoder families people fine-tune, validated in llama.cpp against transformers.

Each family is a tiny random model built from its own transformers config (hidden size 32,
2 layers; tests/tiny_configs.py) with SmolLM2's real tokenizer, exported through the CLI at
F16 with validation on: llama.cpp's tokenizer must give transformers' token ids and the
same chat template, and its next-token top-1 must agree with transformers' (>= 0.99, as
``metrics.validation`` records it).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from gguf import GGUFReader
from tiny_configs import MORE_DECODERS

# What llama.cpp calls each family's architecture (its converter maps Mistral onto LLaMA).
GGUF_ARCH = {"qwen3": "qwen3", "mistral": "llama", "gemma3_text": "gemma3", "phi3": "phi3", "olmo2": "olmo2"}
# transformers 5 loads any qwen2 folder's tokenizer as Qwen2Tokenizer: Qwen's own pre-tokenizer
# over SmolLM2's vocabulary, a tokenizer the converter does not recognise (nor would llama.cpp).
FOREIGN_TOKENIZER = "qwen2"
VALIDATE = ("--samples", "8", "--max-new-tokens", "4", "-q")


def test_every_family_but_one_is_checked() -> None:
    assert set(MORE_DECODERS) == {*GGUF_ARCH, FOREIGN_TOKENIZER}


@pytest.mark.parametrize("model_type", sorted(GGUF_ARCH))
def test_an_f16_export_runs_in_llama_cpp_as_in_transformers(
    cli, smol_family, chat_topics, tmp_path, model_type
) -> None:
    model = smol_family(model_type)
    result = cli(
        "--yard", tmp_path, "export", "--checkpoint", model, "--quant", "f16",
        "--data", chat_topics, *VALIDATE,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    file = Path(result.stdout.strip().splitlines()[-1].removeprefix("saved "))
    reader = GGUFReader(file)
    assert reader.fields["general.architecture"].contents() == GGUF_ARCH[model_type]
    assert reader.fields["tokenizer.ggml.pre"].contents() == "smollm"  # recognised, not a fallback

    manifest = json.loads((file.parent / "manifest.json").read_text())
    checks = manifest["metrics"]["validation"]
    assert manifest["status"] == "complete" and checks["rows"] == 8 and checks["texts"] == 16
    assert checks["tokenizer_identical"] == 1.0 and checks["chat_template_identical"] == 1.0
    assert checks["top1_agreement"] >= 0.99, checks
    assert abs(checks["perplexity_change"]) < 1e-3
    assert (file.parent / "validation" / "tokenizer_mismatches.jsonl").read_text() == ""


def test_a_tokenizer_the_converter_does_not_recognise_is_an_error(
    cli, smol_family, chat_topics, tmp_path
) -> None:
    result = cli(
        "--yard", tmp_path, "export", "--checkpoint", smol_family(FOREIGN_TOKENIZER), "--no-validate"
    )
    assert result.exit_code == 2 and result.stderr.startswith(
        "error: llama.cpp's converter could not convert"
    )
    assert "BPE pre-tokenizer was not recognized" in result.stderr
    assert "export with the tokenizer the base model was published with" in " ".join(result.stderr.split())
    assert not (tmp_path / "exports").exists() or not any((tmp_path / "exports").iterdir())


def test_a_byte_level_tokenizer_saved_by_transformers_is_read_as_one(smol_family, tmp_path) -> None:
    """Phi3ForCausalLM's converter asks for a tokenizer.model unless the tokenizer says GPT2Tokenizer."""
    from tuneyard.export.converter import converter_view

    folder = shutil.copytree(smol_family("phi3"), tmp_path / "phi3")
    assert (
        json.loads((folder / "tokenizer_config.json").read_text())["tokenizer_class"] == "TokenizersBackend"
    )
    with converter_view(folder) as view:
        assert view.name == folder.name and view != folder
        assert json.loads((view / "tokenizer_config.json").read_text())["tokenizer_class"] == "GPT2Tokenizer"
        assert (view / "model.safetensors").resolve() == (folder / "model.safetensors").resolve()
    assert not view.exists()
    assert (
        json.loads((folder / "tokenizer_config.json").read_text())["tokenizer_class"] == "TokenizersBackend"
    )
    (folder / "tokenizer.model").write_bytes(b"")  # a SentencePiece model: the converter reads it as it is
    with converter_view(folder) as view:
        assert view == folder
