"""``tuneyard merge``: LoRA folded into its base, low-rank factors made dense, and every refusal."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from merged_outputs import logits, saved
from safetensors.torch import load_file, save_file

import tuneyard

QUICK = ("--epochs", "1", "--batch-size", "8", "--learning-rate", "1e-2", "--max-length", "64", "-q")


def nothing_merged(yard: Path) -> bool:
    return not (yard / "models" / "merged").exists()


@pytest.fixture(scope="module")
def lora_runs(tiny_decoder, chat_topics, tmp_path_factory):  # type: ignore[no-untyped-def]
    """A LoRA run on each tiny decoder, in one yard: {arch: (yard, run folder)}."""
    from tuneyard.cli import main

    yard = tmp_path_factory.mktemp("yard")
    runs = {}
    for arch in ("llama", "gpt2"):
        base = yard / f"base-{arch}"
        shutil.copytree(tiny_decoder(arch), base)
        args = ["--yard", str(yard), "finetune", "--checkpoint", str(base), "--data", str(chat_topics)]
        main([*args, "--strategy", "lora", "--name", f"lora-{arch}", *QUICK])  # raises on failure
        runs[arch] = (yard, next(yard.glob(f"models/finetuned/{arch}/lora/lora-{arch}")))
    return runs


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_merge_is_the_base_plus_scaled_lora_product(cli, lora_runs, arch) -> None:
    yard, run = lora_runs[arch]
    merged = saved(cli("--yard", yard, "merge", "--checkpoint", run))
    assert merged == yard / "models" / "merged" / arch / f"lora-{arch}"

    adapter = load_file(str(run / "best" / "adapter_model.safetensors"))
    config = json.loads((run / "best" / "adapter_config.json").read_text())
    base = load_file(str(yard / f"base-{arch}" / "model.safetensors"))
    weights = load_file(str(merged / "model.safetensors"))
    scale = config["lora_alpha"] / config["r"]
    layers = [key.removesuffix(".lora_A.weight") for key in adapter if key.endswith(".lora_A.weight")]
    assert len(layers) == 2 * (7 if arch == "llama" else 4)  # GPT-2: c_attn, both c_proj, c_fc
    for layer in layers:
        name = layer.removeprefix("base_model.model.") + ".weight"
        delta = adapter[f"{layer}.lora_B.weight"] @ adapter[f"{layer}.lora_A.weight"] * scale
        delta = delta.T if arch == "gpt2" else delta  # GPT-2's Conv1D stores (in, out)
        assert delta.abs().max() > 0, "the adapter learned something"
        assert torch.allclose(weights[name], base[name] + delta, atol=1e-6), name
    untouched = set(weights) - {layer.removeprefix("base_model.model.") + ".weight" for layer in layers}
    assert all(torch.equal(weights[key], base[key]) for key in untouched if key in base)

    plain = tuneyard.load(merged)
    assert type(plain).__name__ == {"llama": "LlamaForCausalLM", "gpt2": "GPT2LMHeadModel"}[arch]
    assert not hasattr(plain, "peft_config")
    tokenizer = tuneyard.load_tokenizer(merged)
    assert tokenizer.chat_template  # the run's chat template ships with the merged model
    assert torch.allclose(logits(plain, tokenizer), logits(tuneyard.load(run), tokenizer), atol=1e-4)

    manifest = json.loads((merged / "manifest.json").read_text())
    run_id = json.loads((run / "manifest.json").read_text())["id"]
    assert manifest["kind"] == "merged" and manifest["method"] == "lora"
    assert [(parent["role"], parent["id"]) for parent in manifest["parents"]][0] == ("adapter", run_id)
    assert manifest["parents"][1]["role"] == "base" and manifest["parents"][1]["path"] == f"base-{arch}"
    assert manifest["task"] == "chat_topics" and manifest["metrics"]["layers_merged"] == len(layers)


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_dense_multiplies_a_compressed_models_factors_back(
    cli, tiny_decoder, chat_topics, tmp_path, arch
) -> None:
    from transformers import AutoModelForCausalLM

    args = ("--method", "standard", "--rank", "4", "--data", chat_topics, "-q")
    compressed = saved(cli("--yard", tmp_path, "compress", "--model", tiny_decoder(arch), *args))
    refused = cli("--yard", tmp_path, "merge", "--checkpoint", compressed)
    assert refused.exit_code == 2 and "Pass --dense" in refused.stderr and nothing_merged(tmp_path)

    merged = saved(cli("--yard", tmp_path, "merge", "--checkpoint", compressed, "--dense"))
    assert not (merged / "compression_info.json").exists()
    factors = load_file(str(compressed / "model.safetensors"))
    dense = load_file(str(merged / "model.safetensors"))
    lefts = [key.removesuffix(".left") for key in factors if key.endswith(".left")]
    assert lefts
    for layer in lefts:
        product = factors[f"{layer}.left"] @ factors[f"{layer}.right"]
        stored = dense[f"{layer}.weight"]
        assert torch.allclose(stored.T if arch == "gpt2" else stored, product, atol=1e-6), layer
    plain = AutoModelForCausalLM.from_pretrained(merged)  # plain transformers, no tuneyard needed
    tokenizer = tuneyard.load_tokenizer(merged)
    assert torch.allclose(
        logits(plain.eval(), tokenizer), logits(tuneyard.load(compressed), tokenizer), atol=1e-4
    )
    manifest = json.loads((merged / "manifest.json").read_text())
    assert manifest["method"] == "lowrank" and [parent["role"] for parent in manifest["parents"]] == [
        "source"
    ]


def test_a_classifier_lora_run_merges_with_its_head(cli, tiny_model, tmp_path) -> None:
    from topic_data import write_topic_csvs

    data = write_topic_csvs(tmp_path / "topics", ("sports", "cooking"), {"train": 32, "validation": 16})
    args = ("--data", data, "--strategy", "lora", "--name", "classifier", *QUICK)
    run = Path(cli("--yard", tmp_path, "finetune", "--checkpoint", tiny_model("bert"), *args).stdout.strip())
    merged = saved(cli("--yard", tmp_path, "merge", "--checkpoint", run / "best"))
    plain = tuneyard.load(merged)
    assert type(plain).__name__ == "BertForSequenceClassification"
    assert plain.config.id2label == {0: "cooking", 1: "sports"}
    tokenizer = tuneyard.load_tokenizer(merged)
    assert torch.allclose(logits(plain, tokenizer), logits(tuneyard.load(run), tokenizer), atol=1e-4)
    assert json.loads((merged / "manifest.json").read_text())["parents"][0]["path"] == str(
        run.relative_to(tmp_path)
    )


def test_a_plain_model_has_nothing_to_merge(cli, tiny_decoder, tmp_path) -> None:
    result = cli("--yard", tmp_path, "merge", "--checkpoint", tiny_decoder("llama"))
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert "nothing to merge" in result.stderr and nothing_merged(tmp_path)


def test_a_merge_whose_logit_check_fails_is_refused_and_nothing_is_filed(cli, lora_runs, tmp_path) -> None:
    yard, run = lora_runs["llama"]
    diverged = tmp_path / "diverged"
    shutil.copytree(run / "best", diverged)
    config = json.loads((diverged / "adapter_config.json").read_text())  # out of its yard: name the base
    config["base_model_name_or_path"] = str(yard / config["base_model_name_or_path"])
    (diverged / "adapter_config.json").write_text(json.dumps(config))
    adapter = load_file(str(diverged / "adapter_model.safetensors"))
    first = sorted(key for key in adapter if key.endswith("lora_B.weight"))[0]
    adapter[first][0, 0] = float("nan")  # one weight of a run that diverged
    save_file(adapter, str(diverged / "adapter_model.safetensors"))
    result = cli("--yard", tmp_path / "yard", "merge", "--checkpoint", diverged)
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
    assert "the merged model's logits differ from" in result.stderr and "nothing was written" in result.stderr
    assert "NaN or inf" in result.stderr
    assert nothing_merged(tmp_path / "yard")
    assert not list((tmp_path / "yard").rglob(".tmp-*"))


def test_a_quantized_base_is_refused(cli, lora_runs, tmp_path) -> None:
    yard, run = lora_runs["llama"]
    base = yard / "base-llama"
    config = json.loads((base / "config.json").read_text())
    try:
        (base / "config.json").write_text(
            json.dumps(config | {"quantization_config": {"quant_method": "gguf"}})
        )
        result = cli("--yard", tmp_path, "merge", "--checkpoint", run)
    finally:
        (base / "config.json").write_text(json.dumps(config))
    assert result.exit_code == 2 and "is quantized (gguf)" in result.stderr
    assert "full-precision base" in result.stderr and nothing_merged(tmp_path)


def test_a_bfloat16_lora_run_merges_into_bfloat16_weights_and_exports(
    cli, smol_decoder, chat_topics, tmp_path
) -> None:
    from gguf import GGUFReader
    from safetensors import safe_open

    args = ("--data", chat_topics, "--strategy", "lora", "--dtype", "bfloat16", "--name", "bf16", *QUICK)
    run = Path(cli("--yard", tmp_path, "finetune", "--checkpoint", smol_decoder, *args).stdout.strip())
    assert json.loads((run / "manifest.json").read_text())["config"]["dtype"] == "bfloat16"
    merged = saved(cli("--yard", tmp_path, "merge", "--checkpoint", run))
    with safe_open(str(merged / "model.safetensors"), framework="pt") as handle:
        assert {str(handle.get_slice(key).get_dtype()) for key in handle.keys()} == {"BF16"}  # noqa: SIM118
    assert json.loads((merged / "config.json").read_text())["dtype"] == "bfloat16"
    assert json.loads((merged / "manifest.json").read_text())["config"]["dtype"] == "bfloat16"

    # The merge is computed in float32 and rounded once: --dtype float32 keeps the unrounded sum.
    exact = saved(
        cli("--yard", tmp_path, "merge", "--checkpoint", run, "--dtype", "float32", "--name", "f32")
    )
    rounded, unrounded = (
        load_file(str(merged / "model.safetensors")),
        load_file(str(exact / "model.safetensors")),
    )
    assert all(unrounded[key].dtype == torch.float32 for key in unrounded)
    assert all(torch.equal(rounded[key], unrounded[key].to(torch.bfloat16)) for key in unrounded)

    exported = saved(
        cli("--yard", tmp_path, "export", "--no-validate", "--checkpoint", merged, "--quant", "f16")
    )
    reader = GGUFReader(exported)
    embedding = next(t for t in reader.tensors if t.name == "token_embd.weight")
    assert embedding.tensor_type.name == "F16"
    assert torch.allclose(
        torch.from_numpy(embedding.data.astype("float32")),
        rounded["model.embed_tokens.weight"].float(),
        atol=1e-3,
    )
