"""``torchrun --nproc_per_node 2 -m tuneyard finetune`` on CPU (gloo): two trainers, one run."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys

import pytest


@pytest.mark.slow  # two processes start torch and train: about 30-50 s on 2 shared cores
def test_two_processes_train_and_only_rank_zero_files_the_run(tiny_model, topics, tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        "29517",
        "-m",
        "tuneyard",
        "--yard",
        str(tmp_path),
        "finetune",
        "--checkpoint",
        str(tiny_model("bert")),
        "--data",
        str(topics),
        "--strategy",
        "full",
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--project",
        "dist",
        "--quiet",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    runs = [path for path in (tmp_path / "outputs" / "dist" / "topics").iterdir() if path.is_dir()]
    assert [path.name for path in runs] == ["bert_tiny_full"]  # no -2 from a second rank, no temp folders
    # the project outputs, which rank 0 alone writes (the others have no run writer)
    assert (runs[0].parent / "bert_tiny_full_weights.png").is_file()
    (row,) = csv.DictReader((tmp_path / "outputs" / "dist" / "metrics.csv").open())
    assert row["name"] == "bert_tiny_full"
    run = runs[0]
    assert done.stdout.split() == [str(run)]  # one report, from rank 0
    assert done.stderr.count("trainable parameters") == 1
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert not [path for path in run.iterdir() if path.name.startswith(".")]

    # 64 rows, batch 8 per process, 2 processes: 4 optimizer steps per epoch, and each rank's RNG state saved.
    assert sorted(path.name for path in run.glob("checkpoint-*")) == ["checkpoint-1-4", "checkpoint-2-8"]
    assert {"rng_state_0.pth", "rng_state_1.pth"} <= {
        path.name for path in (run / "checkpoint-2-8").iterdir()
    }
    state = json.loads((run / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    # The classification loss is not scaled by the process count (a per-example mean starts near ln 2).
    assert 0.3 < state["log_history"][0]["loss"] < 1.0

    with sqlite3.connect(tmp_path / ".tuneyard" / "index.db") as connection:
        rows = connection.execute("SELECT kind, status, path FROM artifacts ORDER BY path").fetchall()
    assert rows == [("run", "complete", "outputs/dist/topics/bert_tiny_full")]


@pytest.mark.slow  # as above, with TRL's SFTTrainer on a tiny decoder
def test_two_processes_instruction_tune_a_decoder_into_one_run(tiny_decoder, chat_topics, tmp_path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29518",
        "-m", "tuneyard", "--yard", str(tmp_path), "finetune", "--checkpoint", str(tiny_decoder("llama")),
        "--data", str(chat_topics), "--strategy", "lora", "--epochs", "1", "--batch-size", "8",
        "--max-length", "64", "--project", "dist", "--quiet",
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]

    runs = [path for path in (tmp_path / "outputs" / "dist" / "chat_topics").iterdir() if path.is_dir()]
    assert len(runs) == 1 and done.stdout.split() == [str(runs[0])]  # one run, one report from rank 0
    run = runs[0]
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
    # 32 rows, batch 8 per process, 2 processes: 2 optimizer steps in the epoch.
    assert sorted(path.name for path in run.glob("checkpoint-*")) == ["checkpoint-1-2"]
    assert (run / "best" / "adapter_model.safetensors").is_file()
    with open(run / "training_log.csv") as handle:
        assert handle.readline().strip().split(",")[:5] == [
            "epoch",
            "step",
            "train_loss",
            "val_loss",
            "perplexity",
        ]
