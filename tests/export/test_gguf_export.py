"""``tuneyard export --format gguf``: llama.cpp's own converter, the merge before it, and its refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import GGUFReader

import tuneyard

QUICK = ("--epochs", "1", "--batch-size", "8", "--learning-rate", "1e-2", "--max-length", "96", "-q")


@pytest.fixture(scope="session")
def smol_decoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random LLaMA with SmolLM2's real tokenizer (from its GGUF), which llama.cpp recognises."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from tuneyard.models.gguf import packaged_gguf

    gguf = packaged_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=str(gguf))
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("models") / "tiny-smol"
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def saved(result) -> Path:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1].removeprefix("saved "))


def tensor(reader: GGUFReader, name: str) -> np.ndarray:
    return next(t for t in reader.tensors if t.name == name).data


def test_f16_and_q8_0_hold_the_models_weights(cli, smol_decoder, tmp_path) -> None:
    model = tuneyard.load(smol_decoder)
    files = {quant: saved(cli("--yard", tmp_path, "export", "--checkpoint", smol_decoder, "--quant", quant))
             for quant in ("f16", "q8_0")}  # fmt: skip
    assert files["f16"] == tmp_path / "exports" / "tiny-smol_f16" / "tiny-smol-f16.gguf"
    # Q8_0 stores 34 bytes per 32 weights, F16 64: about 0.53x (the vocabulary metadata aside).
    weight_bytes = {
        quant: sum(int(t.n_bytes) for t in GGUFReader(file).tensors) for quant, file in files.items()
    }
    assert 0.5 < weight_bytes["q8_0"] / weight_bytes["f16"] < 0.6

    reader = GGUFReader(files["f16"])
    assert reader.fields["general.architecture"].contents() == "llama"
    embedding = tensor(reader, "token_embd.weight").astype(np.float32)
    expected = model.model.embed_tokens.weight.detach().numpy()
    assert np.allclose(embedding, expected, atol=1e-3)  # f16 rounding of the same matrix
    assert reader.fields["tokenizer.ggml.pre"].contents() == "smollm"  # llama.cpp recognised the tokenizer

    manifest = json.loads((files["q8_0"].parent / "manifest.json").read_text())
    assert manifest["kind"] == "export" and manifest["method"] == "q8_0"
    assert manifest["metrics"]["tensors"] == len(GGUFReader(files["q8_0"]).tensors) == len(reader.tensors)
    assert manifest["metrics"]["file_bytes"] == files["q8_0"].stat().st_size
    assert manifest["config"]["converter"] == "llama.cpp vendored in llama-cpp-python 0.3.36"
    assert [file["path"] for file in manifest["files"]] == ["tiny-smol-q8_0.gguf"]


def test_a_lora_run_is_merged_once_then_exported(cli, smol_decoder, chat_topics, tmp_path) -> None:
    result = cli(
        "--yard", tmp_path, "finetune", "--checkpoint", smol_decoder, "--data", chat_topics,
        "--strategy", "lora", "--name", "tuned", *QUICK,
    )  # fmt: skip
    run = Path(result.stdout.strip())
    first = cli("--yard", tmp_path, "export", "--checkpoint", run, "--quant", "q8_0")
    second = cli("--yard", tmp_path, "export", "--checkpoint", run)
    saved(first), saved(second)
    assert "merge of" in first.stderr and "GGUF has no adapter layers" in first.stderr
    merged = list((tmp_path / "models" / "merged" / "llama").iterdir())
    assert [path.name for path in merged] == ["tuned"]  # the second export reused the merge

    result = cli("--yard", tmp_path, "runs", "ls", "--kind", "export", "--format", "json")
    rows = json.loads(result.stdout)
    assert sorted(row["name"] for row in rows) == ["tuned_f16", "tuned_q8_0"]
    export = json.loads((tmp_path / "exports" / "tuned_f16" / "manifest.json").read_text())
    merged_manifest = json.loads((merged[0] / "manifest.json").read_text())
    assert export["parents"][0]["id"] == merged_manifest["id"] and export["task"] == "chat_topics"
    assert merged_manifest["parents"][0]["id"] == json.loads((run / "manifest.json").read_text())["id"]


def test_a_compressed_model_is_exported_dense(cli, smol_decoder, chat_topics, tmp_path) -> None:
    args = ("--method", "standard", "--rank", "8", "--data", chat_topics, "-q")
    compressed = saved(cli("--yard", tmp_path, "compress", "--model", smol_decoder, *args))
    result = cli("--yard", tmp_path, "export", "--checkpoint", compressed)
    file = saved(result)
    assert "the dense form of" in result.stderr and "no low-rank layers" in result.stderr
    reader = GGUFReader(file)
    factors = tuneyard.load(compressed).model.layers[0].self_attn.q_proj
    dense = tensor(reader, "blk.0.attn_q.weight").astype(np.float32)
    product = (factors.left @ factors.right).detach().numpy()
    # llama.cpp permutes q/k rows for its rotary layout; the rows are the same set of vectors.
    assert dense.shape == product.shape
    assert np.allclose(np.sort(dense, axis=0), np.sort(product, axis=0), atol=1e-3)


def test_a_model_the_converter_cannot_handle_is_an_error(cli, smol_decoder, tmp_path) -> None:
    foreign = tmp_path / "foreign"
    shutil.copytree(smol_decoder, foreign)
    config = json.loads((foreign / "config.json").read_text())
    (foreign / "config.json").write_text(json.dumps(config | {"architectures": ["FooForCausalLM"]}))
    result = cli("--yard", tmp_path, "export", "--checkpoint", foreign)
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert "Model FooForCausalLM is not supported" in result.stderr
    assert not (tmp_path / "exports").exists() or not any((tmp_path / "exports").iterdir())


def test_an_unknown_quant_names_the_choices(cli, smol_decoder, tmp_path) -> None:
    result = cli("--yard", tmp_path, "export", "--checkpoint", smol_decoder, "--quant", "q4_k_m")
    assert result.exit_code == 2 and "quant" in result.stderr and "q8_0" in result.stderr
