"""The GPU paths: mixed precision, a teacher beside its student, generation, all on CUDA.

Marked ``gpu`` and left out of the default and CI runs (CI has no GPU); run them on a
machine with one: ``pytest -m gpu tests/gpu``. Each test first asserts a GPU is there,
so selecting them without one fails rather than passing on the CPU.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from topic_data import write_topic_csvs

pytestmark = pytest.mark.gpu
QUICK = ("--epochs", "2", "--batch-size", "8", "--learning-rate", "1e-3", "--max-length", "32", "--quiet")


@pytest.fixture(autouse=True)
def a_gpu() -> None:
    assert torch.cuda.is_available(), "these tests need a CUDA GPU (pytest -m gpu on a machine with one)"
    torch.cuda.reset_peak_memory_stats()


def trained(cli, yard: Path, *args: object) -> Path:  # type: ignore[no-untyped-def]
    result = cli("--yard", yard, "finetune", *args, *QUICK)
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def assert_trained_on_cuda(run: Path) -> None:
    """The Trainer's own device was CUDA: the log's GPU columns are written only then, from its counters."""
    with (run / "training_log.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(float(row["gpu_memory_gib"]) > 0 for row in rows)  # the weights sat on the GPU
    assert all(float(row["gpu_peak_memory_gib"]) >= float(row["gpu_memory_gib"]) for row in rows)


def test_a_classifier_trains_in_bf16_on_the_gpu_and_is_scored_there(cli, tiny_model, tmp_path) -> None:
    data = write_topic_csvs(
        tmp_path / "topics", ("sports", "cooking"), {"train": 64, "validation": 16, "test": 16}
    )
    run = trained(cli, tmp_path, "--checkpoint", tiny_model("bert"), "--data", data, "--precision", "bf16")
    assert_trained_on_cuda(run)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["config"]["precision"] == "bf16"
    scored = cli("--yard", tmp_path, "eval", "--checkpoint", run / "best", "--data", data, "--split", "test")
    assert scored.exit_code == 0, scored.stderr
    metrics = json.loads(next((run / "evaluation_results").glob("*test*/metrics.json")).read_text())
    assert metrics["throughput"]["device"].startswith("cuda")
    assert metrics["throughput"]["memory_measure"] == "cuda_max_allocated"
    assert 0 <= metrics["metrics"]["accuracy"] <= 1


def test_a_compressed_student_distils_from_its_teacher_on_the_gpu(cli, tiny_model, tmp_path) -> None:
    data = write_topic_csvs(tmp_path / "topics", ("sports", "cooking"), {"train": 64, "validation": 16})
    dense = trained(cli, tmp_path, "--checkpoint", tiny_model("bert"), "--data", data)
    compressed = cli("--yard", tmp_path, "compress", "--model", dense / "best", "--method", "whiten",
                     "--ratio", "0.5", "--data", data, "--calib-samples", "32")  # fmt: skip
    assert compressed.exit_code == 0, compressed.stderr
    student = Path(compressed.stdout.strip().splitlines()[-1].removeprefix("saved "))
    run = trained(cli, tmp_path, "--checkpoint", student, "--data", data, "--precision", "bf16")
    assert_trained_on_cuda(run)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["strategy"] == "lowrank"
    assert any(parent["role"] == "teacher" for parent in manifest["parents"])  # the dense model taught it


def test_a_decoder_is_lora_tuned_in_bf16_and_generates_on_the_gpu(
    cli, tiny_decoder, chat_topics, tmp_path
) -> None:
    run = trained(cli, tmp_path, "--checkpoint", tiny_decoder("llama"), "--data", chat_topics,
                  "--strategy", "lora", "--precision", "bf16")  # fmt: skip
    assert_trained_on_cuda(run)
    scored = cli("--yard", tmp_path, "eval", "--checkpoint", run / "best", "--data", chat_topics, "--split",
                 "test", "--device", "cuda")  # fmt: skip
    assert scored.exit_code == 0, scored.stderr
    predictions = next((run / "evaluation_results").rglob("predictions.jsonl")).read_text().splitlines()
    assert len(predictions) == 8  # every test row answered by generation on the GPU
