"""``tuneyard export --format gguf``: llama.cpp's own converter, the merge before it, and its refusals."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from gguf import GGUFReader

import tuneyard

QUICK = ("--epochs", "1", "--batch-size", "8", "--learning-rate", "1e-2", "--max-length", "96", "-q")


def saved(result) -> Path:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1].removeprefix("saved "))


def tensor(reader: GGUFReader, name: str) -> np.ndarray:
    return next(t for t in reader.tensors if t.name == name).data


def test_f16_and_q8_0_hold_the_models_weights(cli, smol_decoder, tmp_path) -> None:
    model = tuneyard.load(smol_decoder)
    export = ("--yard", tmp_path, "export", "--no-validate", "--checkpoint", smol_decoder, "--quant")
    files = {quant: saved(cli(*export, quant)) for quant in ("f16", "q8_0")}
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
    assert [file["path"] for file in manifest["files"]] == ["README.md", "tiny-smol-q8_0.gguf"]  # its card


def test_a_lora_run_is_merged_once_then_exported(cli, smol_decoder, chat_topics, tmp_path) -> None:
    result = cli(
        "--yard", tmp_path, "finetune", "--checkpoint", smol_decoder, "--data", chat_topics,
        "--strategy", "lora", "--name", "tuned", *QUICK,
    )  # fmt: skip
    run = Path(result.stdout.strip())
    first = cli("--yard", tmp_path, "export", "--no-validate", "--checkpoint", run, "--quant", "q8_0")
    second = cli("--yard", tmp_path, "export", "--no-validate", "--checkpoint", run)
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
    result = cli("--yard", tmp_path, "export", "--no-validate", "--checkpoint", compressed)
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
    result = cli("--yard", tmp_path, "export", "--no-validate", "--checkpoint", foreign)
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert message.startswith(
        "error: llama.cpp's converter (llama.cpp vendored in llama-cpp-python 0.3.36) has no FooForCausalLM; "
        "it converts "
    )
    # The converter's own list (its --print-supported-models), the families tuneyard tests among them.
    named = message.split(" architectures: ", 1)[1].split(". ", 1)[0].split(", ")
    assert f"it converts {len(named)} architectures: " in message and len(named) > 200
    families = ("LlamaForCausalLM", "Qwen2ForCausalLM", "Qwen3ForCausalLM", "MistralForCausalLM")
    assert {*families, "Gemma3ForCausalLM", "Phi3ForCausalLM", "Olmo2ForCausalLM"} <= set(named)
    assert "FooForCausalLM" not in named and "or use --format safetensors" in message
    assert not (tmp_path / "exports").exists() or not any((tmp_path / "exports").iterdir())


def test_an_unknown_quant_names_the_choices(cli, smol_decoder, tmp_path) -> None:
    result = cli("--yard", tmp_path, "export", "--checkpoint", smol_decoder, "--quant", "q3_k_xl")
    assert result.exit_code == 2 and result.stderr.startswith("error: unknown GGUF type --quant 'q3_k_xl'")
    assert "q8_0 (llama.cpp's converter); q6_k, q5_k_m, q4_k_m, q4_0 (llama.cpp's quantizer)" in result.stderr
    assert not (tmp_path / "exports").exists()


def test_q4_k_m_is_quantized_by_llama_cpp_and_runs_in_it(cli, smol_decoder_256, tmp_path) -> None:
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    export = ("--yard", tmp_path, "export", "--no-validate", "--checkpoint", smol_decoder_256, "--quant")
    files = {quant: saved(cli(*export, quant)) for quant in ("f16", "q4_k_m")}
    assert files["q4_k_m"].stat().st_size < 0.5 * files["f16"].stat().st_size
    types = {t.name: t.tensor_type.name for t in GGUFReader(files["q4_k_m"]).tensors}
    # llama.cpp's Q4_K_M mix: 4-bit k-quants for most matrices, 6-bit for the (tied) embedding
    # and for some attn_v / ffn_down layers, norms kept in F32.
    matrices = ("attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up")
    assert all(types[f"blk.{layer}.{matrix}.weight"] == "Q4_K" for layer in (0, 1) for matrix in matrices)
    assert types["token_embd.weight"] == "Q6_K" and types["blk.0.attn_norm.weight"] == "F32"
    assert set(types.values()) == {"Q4_K", "Q6_K", "F32"}

    manifest = json.loads((files["q4_k_m"].parent / "manifest.json").read_text())
    assert manifest["method"] == "q4_k_m" and manifest["config"]["quantized_from"] == "f16"
    assert manifest["config"]["quantizer"] == "llama.cpp llama_model_quantize (llama-cpp-python 0.3.36)"
    # Its card and the one GGUF: no intermediate F16.
    assert [file["path"] for file in manifest["files"]] == ["README.md", "smol-256-q4_k_m.gguf"]
    assert manifest["metrics"]["file_bytes"] == files["q4_k_m"].stat().st_size
    assert manifest["metrics"]["tensors"] == len(types) == 20

    tokenizer = AutoTokenizer.from_pretrained(smol_decoder_256)
    llama = Llama(model_path=str(files["q4_k_m"]), n_ctx=64, seed=0, verbose=False)
    text = "Which Debian section holds a text editor?"
    assert llama.n_vocab() == len(tokenizer) == 49152
    assert llama.tokenize(text.encode(), add_bos=False) == tokenizer(text)["input_ids"]
    completion = llama.create_completion("Hello", max_tokens=2, temperature=0.0)
    assert completion["usage"]["completion_tokens"] == 2
    llama.close()


def test_k_quants_of_narrow_rows_fall_back_with_a_note(cli, smol_decoder, tmp_path) -> None:
    result = cli(
        "--yard", tmp_path, "export", "--no-validate", "--checkpoint", smol_decoder, "--quant", "q4_k_m"
    )
    types = {t.name: t.tensor_type.name for t in GGUFReader(saved(result)).tensors}
    # Rows of 32 weights cannot hold a 256-weight k-quant block: llama.cpp picks q5_0 / q8_0.
    assert types["blk.0.attn_q.weight"] == "Q5_0" and types["token_embd.weight"] == "Q8_0"
    assert (
        "note: llama.cpp used a fallback type for 14 of 20 tensors, whose rows are not a multiple of the "
        "type's block (256 weights): q4_K -> q5_0 (12), q6_K -> q8_0 (2)"
    ) in " ".join(result.stderr.split())


def test_without_llama_cpp_a_quantized_type_says_how_to_install_it(
    cli, smol_decoder, tmp_path, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # as if llama-cpp-python were not installed
    result = cli(
        "--yard", tmp_path, "export", "--no-validate", "--checkpoint", smol_decoder, "--quant", "q4_0"
    )
    assert result.exit_code == 2 and "llama.cpp's Python binding is not installed" in result.stderr
    assert (
        'CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF' in result.stderr
        and "pip install 'tuneyard[gguf]'" in result.stderr
    )
    assert not (tmp_path / "exports").exists()


def test_safetensors_export_copies_the_merged_folder_and_shares_its_weights(
    cli, smol_decoder, chat_topics, tmp_path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    result = cli(
        "--yard", tmp_path, "finetune", "--checkpoint", smol_decoder, "--data", chat_topics,
        "--strategy", "lora", "--name", "tuned", *QUICK,
    )  # fmt: skip
    run = Path(result.stdout.strip())
    result = cli("--yard", tmp_path, "export", "--checkpoint", run, "--format", "safetensors")
    folder = saved(result)
    assert folder == tmp_path / "exports" / "tuned_safetensors"
    assert "plain folders for other runtimes have no adapter layers" in result.stderr
    merged = tmp_path / "models" / "merged" / "llama" / "tuned"
    copied = sorted(path.name for path in folder.iterdir())
    assert copied == sorted(path.name for path in merged.iterdir())  # every file, its own manifest and card
    assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json"} <= set(copied)
    assert "# tuned_safetensors" in (folder / "README.md").read_text()
    own = ("manifest.json", "README.md")
    for name in copied:
        if name not in own:
            assert (folder / name).read_bytes() == (merged / name).read_bytes()
        if name.endswith(".safetensors"):  # the weights: the yard's one read-only copy, linked
            assert (folder / name).samefile(merged / name) and not (folder / name).stat().st_mode & 0o222
        elif name not in own:  # configs and tokenizer: the export's own, to edit
            assert not (folder / name).samefile(merged / name) and (folder / name).stat().st_nlink == 1

    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer.chat_template  # the chat template came along
    probe = tokenizer("Which Debian section holds a text editor?", return_tensors="pt")
    with torch.inference_mode():
        exported = AutoModelForCausalLM.from_pretrained(folder)(**probe).logits
        assert torch.equal(exported, AutoModelForCausalLM.from_pretrained(merged)(**probe).logits)
        assert torch.allclose(exported, tuneyard.load(run)(**probe).logits, atol=1e-4)

    manifest = json.loads((folder / "manifest.json").read_text())
    merged_manifest = json.loads((merged / "manifest.json").read_text())
    assert manifest["kind"] == "export" and manifest["method"] == "safetensors"
    assert manifest["parents"][0]["id"] == merged_manifest["id"] and manifest["task"] == "chat_topics"
    assert manifest["config"]["quant"] is None and manifest["metrics"]["tensors"] == 2 + 2 * 9
    assert manifest["metrics"]["file_bytes"] == sum(
        (folder / name).stat().st_size for name in copied if name not in own
    )


def test_safetensors_refuses_a_quant(cli, smol_decoder, tmp_path) -> None:
    args = ("--yard", tmp_path, "export", "--checkpoint", smol_decoder, "--format", "safetensors")
    result = cli(*args, "--quant", "q8_0")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: --quant q8_0 is a GGUF type; a safetensors export keeps")
    assert "Leave --quant out, or use --format gguf." in result.stderr
    assert not (tmp_path / "exports").exists()
