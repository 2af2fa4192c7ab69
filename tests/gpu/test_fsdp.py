"""FSDP through accelerate, launched with torchrun: the model is sharded, the run filed whole.

accelerate turns FSDP on only across accelerators (on CPU processes it would quietly run
DDP, which tuneyard refuses: tests/train/test_errors.py), so this runs on a GPU, one
process: the real FSDP wrapping, its sharded optimizer and its checkpoint writing.
Marked ``gpu``: ``pytest -m gpu tests/gpu``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.gpu
FSDP2 = json.dumps({"fsdp_version": 2, "transformer_layer_cls_to_wrap": ["LlamaDecoderLayer"]})


def test_a_decoder_trains_under_fsdp_and_its_best_model_is_whole(tiny_decoder, chat_topics, tmp_path) -> None:
    assert torch.cuda.is_available(), "this test needs a CUDA GPU (pytest -m gpu on a machine with one)"
    base = tiny_decoder("llama")
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "--master_port", "29519",
        "-m", "tuneyard", "--yard", str(tmp_path), "finetune", "--checkpoint", str(base),
        "--data", str(chat_topics), "--strategy", "full", "--epochs", "1", "--batch-size", "8",
        "--max-length", "96", "--project", "fsdp", "--quiet",
        "--set", "trainer.fsdp=full_shard auto_wrap", "--set", f"trainer.fsdp_config={FSDP2}",
    ]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    run = next((tmp_path / "outputs" / "fsdp").glob("*/*"))
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
    checkpoint = next(run.glob("checkpoint-*"))
    saved = {path.name for path in checkpoint.iterdir()}
    # accelerate's FSDP optimizer state (optimizer.bin, or a sharded optimizer_0/), not DDP's optimizer.pt
    assert saved & {"optimizer.bin", "optimizer_0"} and "optimizer.pt" not in saved, saved
    trained = load_file(str(run / "best" / "model.safetensors"))
    original = load_file(str(base / "model.safetensors"))
    assert set(trained) == set(original)  # gathered whole, not one rank's shard
    assert all(trained[name].shape == original[name].shape for name in original)
