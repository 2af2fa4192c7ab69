"""QLoRA on a CUDA GPU: a 4-bit NF4 base trains LoRA adapters, merges unquantized, exports;
its peak GPU memory against a bfloat16 LoRA run of the same model; and DPO with QLoRA, scored
against the adapter-disabled 4-bit start.

Marked ``gpu`` like ``test_cuda.py``: each test first asserts a GPU is there (and
bitsandbytes, the ``[qlora]`` extra), so selecting them without one fails rather than
passing on the CPU. Run: ``pytest -m gpu tests/gpu/test_qlora.py -s`` (``-s`` shows the
memory figures).
"""

from __future__ import annotations

import csv
import gc
import importlib.util
import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from smol_decoders import build_smol_decoder
from transformers import TrainerCallback

pytestmark = pytest.mark.gpu
# 12 layers of 1024 x 4096: about 200M weights in the layers, 31M in the tied embedding.
WIDE = {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 12, "head_dim": 64,
        "num_attention_heads": 16, "num_key_value_heads": 16, "tie_word_embeddings": True}  # fmt: skip
QUICK = ("--epochs", "2", "--batch-size", "8", "--learning-rate", "1e-3", "--max-length", "32", "--quiet")


@pytest.fixture(autouse=True)
def a_gpu_with_bitsandbytes() -> None:
    assert torch.cuda.is_available(), "these tests need a CUDA GPU (pytest -m gpu on a machine with one)"
    assert importlib.util.find_spec("bitsandbytes"), "QLoRA needs bitsandbytes: pip install -e '.[qlora]'"
    gc.collect()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()


def trained(cli, yard: Path, *args: object) -> Path:  # type: ignore[no-untyped-def]
    result = cli("--yard", yard, "finetune", *args, *QUICK)
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def saved(result) -> Path:  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1].removeprefix("saved "))


class QuantizedBaseSeen(TrainerCallback):  # type: ignore[misc]
    """Records whether the model the Trainer trains sits on 4-bit weights."""

    def __init__(self) -> None:
        self.four_bit: bool | None = None

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        inner = model.get_base_model() if hasattr(model, "get_base_model") else model
        self.four_bit = bool(getattr(inner, "is_loaded_in_4bit", False)) and any(
            type(parameter).__name__ == "Params4bit" for parameter in inner.parameters()
        )


def test_a_qlora_run_trains_on_a_4bit_base_then_merges_and_exports_gguf(cli, chat_topics, tmp_path) -> None:
    from gguf import GGUFReader
    from safetensors import safe_open

    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import finetune
    from tuneyard.yard.root import Yard

    # Hidden size 64: every matrix a whole number of bitsandbytes' 64-weight blocks.
    base = build_smol_decoder(tmp_path / "smol-64", hidden=64, intermediate=128, tie_word_embeddings=True)
    options = FinetuneOptions(checkpoint=str(base), data=str(chat_topics), strategy="qlora", epochs=2,
                              batch_size=8, learning_rate=1e-3, max_length=32, name="qlora")  # fmt: skip
    seen = QuantizedBaseSeen()
    run = finetune(options, Yard.open(tmp_path), callbacks=[seen]).path
    assert seen.four_bit, "the base trained in 4-bit"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["strategy"] == "qlora"
    assert manifest["config"]["dtype"] == "float32"  # auto on a GPU: the checkpoint's own
    assert (run / "best" / "adapter_model.safetensors").is_file()
    with open(run / "training_log.csv") as handle:
        losses = [float(row[key]) for row in csv.DictReader(handle) for key in ("train_loss", "val_loss")]
    assert losses and all(math.isfinite(loss) for loss in losses)

    merged = saved(cli("--yard", tmp_path, "merge", "--checkpoint", run))
    config = json.loads((merged / "config.json").read_text())
    assert "quantization_config" not in config and config["dtype"] == "float32"
    with safe_open(str(merged / "model.safetensors"), framework="pt") as handle:
        assert {str(handle.get_slice(key).get_dtype()) for key in handle.keys()} == {"F32"}  # noqa: SIM118

    exported = saved(
        cli("--yard", tmp_path, "export", "--no-validate", "--checkpoint", merged, "--quant", "f16")
    )
    types = {tensor.tensor_type.name for tensor in GGUFReader(exported).tensors}
    assert "F16" in types and types <= {"F16", "F32"}


def test_qlora_peaks_below_bfloat16_lora_on_the_same_model(cli, tiny_decoder, tmp_path, chat_topics) -> None:
    from transformers import AutoModelForCausalLM

    # The layers' bytes decide the peak, as in a real model. Saved in bfloat16, which auto loads.
    sized = tiny_decoder("llama", **WIDE)
    wide = Path(shutil.copytree(sized, tmp_path / "wide-lm"))
    AutoModelForCausalLM.from_pretrained(sized, dtype=torch.bfloat16).save_pretrained(wide)
    peaks = {}
    for strategy in ("lora", "qlora"):  # qlora second: anything lora left behind counts against it
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        run = trained(cli, tmp_path, "--checkpoint", wide, "--data", chat_topics, "--strategy", strategy,
                      "--name", strategy)  # fmt: skip
        peaks[strategy] = torch.cuda.max_memory_allocated()
        assert json.loads((run / "manifest.json").read_text())["config"]["dtype"] == "bfloat16"  # auto
    print(f"\npeak GPU memory (torch.cuda.max_memory_allocated), {torch.cuda.get_device_name()}: "
          f"bf16 lora {peaks['lora'] / 2**20:.0f} MiB, qlora {peaks['qlora'] / 2**20:.0f} MiB")  # fmt: skip
    assert 0 < peaks["qlora"] < peaks["lora"]


class ReferenceAndAdapters(TrainerCallback):  # type: ignore[misc]
    """What DPO compares with, seen from outside the trainer: the model's log-probabilities of fixed
    tokens with its adapter on and disabled (TRL's reference for a PEFT model), and its adapter weights,
    as training begins and as it ends."""

    def __init__(self, ids: torch.Tensor) -> None:
        self.ids = ids
        self.log_probs: dict[str, torch.Tensor] = {}
        self.adapters: dict[str, dict[str, torch.Tensor]] = {}
        self.adapter_names: list[str] = []

    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.adapter_names = list(model.peft_config)
        self.record(model, "start")

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        self.record(model, "end")

    def record(self, model: Any, when: str) -> None:
        self.log_probs[f"policy {when}"] = self.scored(model)
        with model.disable_adapter():
            self.log_probs[f"reference {when}"] = self.scored(model)
        self.adapters[when] = {
            name: parameter.detach().clone()
            for name, parameter in model.named_parameters()
            if "lora_" in name
        }

    def scored(self, model: Any) -> torch.Tensor:
        training = model.training
        model.eval()  # no LoRA dropout
        with torch.no_grad():
            logits = model(input_ids=self.ids.to(next(model.parameters()).device)).logits
        model.train(training)
        return torch.log_softmax(logits.float(), dim=-1).cpu()


def test_dpo_with_qlora_scores_against_the_adapter_disabled_4bit_start(tmp_path) -> None:
    from safetensors import safe_open
    from smol_decoders import smol_tokenizer
    from topic_data import write_topic_preferences

    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.recipe import finetune
    from tuneyard.yard.root import Yard

    base = build_smol_decoder(tmp_path / "smol-64", hidden=64, intermediate=128, tie_word_embeddings=True)
    pairs = write_topic_preferences(tmp_path / "pairs", {"train": 8, "validation": 4})
    options = FinetuneOptions(checkpoint=str(base), data=str(pairs), strategy="qlora", epochs=2,
                              batch_size=4, learning_rate=1e-3, name="dpo-qlora",
                              task_options={"objective": "dpo"})  # fmt: skip
    four_bit = QuantizedBaseSeen()
    seen = ReferenceAndAdapters(
        torch.tensor([smol_tokenizer()("which topic : a goal in the match")["input_ids"]])
    )
    run = finetune(options, Yard.open(tmp_path), callbacks=[four_bit, seen]).path

    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["strategy"] == "qlora"
    assert manifest["task_type"] == "preference"
    assert manifest["config"]["task_options"]["reference"] == "start"
    assert 0.0 <= manifest["metrics"][pairs.name]["rewards/accuracies"] <= 1.0
    assert four_bit.four_bit, "the base trained in 4-bit"
    # The reference is no second copy, neither a model nor TRL's "ref" adapter: the disabled 4-bit base.
    assert seen.adapter_names == ["default"]
    logps = seen.log_probs
    torch.testing.assert_close(logps["reference start"], logps["policy start"], atol=1e-4, rtol=0)
    torch.testing.assert_close(logps["reference end"], logps["policy start"], atol=1e-4, rtol=0)
    start, end = seen.adapters["start"], seen.adapters["end"]
    assert start.keys() == end.keys() and any(not torch.equal(start[name], end[name]) for name in start)
    assert not torch.equal(logps["policy end"], logps["reference end"])  # the adapter is on, then off
    with safe_open(str(run / "best" / "adapter_model.safetensors"), framework="pt") as handle:
        assert handle.keys() and not any(".ref." in key for key in handle.keys())  # noqa: SIM118
