"""``finetune --report-to wandb``: the run reaches W&B's own client, checked in its offline mode.

wandb 0.31 writes an offline run only as its ``run-*.wandb`` file (what ``wandb sync``
uploads): LevelDB's log format (32 KiB blocks of records with a 7-byte header: crc,
length, type) after a 7-byte ``:W&B`` header, each record one of wandb's own protobuf
``Record`` messages. The test reads it with those messages.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK, HEADER = 32768, 7
FULL, LAST = 1, 4  # record types; FIRST and MIDDLE chunks are joined until LAST


def wandb_records(path: Path) -> Iterator[wandb_internal_pb2.Record]:
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    offset, payload = HEADER, b""
    while offset + HEADER <= len(data):
        left = BLOCK - offset % BLOCK
        length, kind = int.from_bytes(data[offset + 4 : offset + 6], "little"), data[offset + 6]
        if left < HEADER or kind == 0:  # a block's zero padding
            offset += left
            continue
        payload += data[offset + HEADER : offset + HEADER + length]
        offset += HEADER + length
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(payload)
            yield record
            payload = b""


def key(item: wandb_internal_pb2.HistoryItem) -> str:
    """``eval/accuracy``: wandb stores a slashed name as a nested key."""
    return item.key or "/".join(item.nested_key)


def test_report_to_wandb_logs_the_run_in_wandbs_offline_mode(tiny_model, topics, tmp_path) -> None:
    env = os.environ | {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_PROJECT": "tuneyard-test"}
    command = [sys.executable, "-m", "tuneyard", "--yard", str(tmp_path / "yard"), "finetune",
               "--checkpoint", str(tiny_model("bert")), "--data", str(topics), "--report-to", "wandb",
               "--epochs", "2", "--batch-size", "8", "--learning-rate", "1e-3", "--quiet"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    yard = str(tmp_path / "yard")
    [run] = [Path(line) for line in result.stdout.splitlines() if line.startswith(yard)]  # wandb prints too

    [log] = (tmp_path / "wandb").glob("offline-run-*/run-*.wandb")  # one run, written by wandb itself
    records = list(wandb_records(log))
    config = {
        item.key: json.loads(item.value_json)
        for record in records
        if record.WhichOneof("record_type") == "config"
        for item in record.config.update
    }
    assert config["learning_rate"] == 1e-3 and config["num_train_epochs"] == 2
    history = [
        {key(item): json.loads(item.value_json) for item in record.history.item}
        for record in records
        if record.WhichOneof("record_type") == "history"
    ]
    evaluations = {row["train/global_step"]: row for row in history if "eval/accuracy" in row}
    with (run / "training_log.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(evaluations) == [int(row["step"]) for row in rows] == [8, 16]
    for row in rows:  # the scores W&B got are the ones tuneyard filed
        logged = evaluations[int(row["step"])]
        assert (logged["eval/loss"], logged["eval/accuracy"]) == (
            float(row["val_loss"]),
            float(row["accuracy"]),
        )
    steps = [row for row in history if "train/loss" in row]  # every logging step's line
    assert [row["train/global_step"] for row in steps] == [8, 16] and all(  # memory then, beside the loss
        0 < row["train/cpu_rss_gib"] <= row["train/cpu_peak_rss_gib"] for row in steps
    )
    assert any(record.WhichOneof("record_type") == "exit" for record in records)  # the run was closed
    assert json.loads((run / "manifest.json").read_text())["config"]["report_to"] == ["wandb"]
