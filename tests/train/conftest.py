"""Fixtures for fine-tuning tests: small labelled CSV datasets and an in-process CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from topic_data import write_topic_csvs


@pytest.fixture(scope="session")
def topics(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two string labels (cooking, sports): 64 train rows, 32 validation rows."""
    return write_topic_csvs(
        tmp_path_factory.mktemp("data") / "topics", ("sports", "cooking"), {"train": 64, "validation": 32}
    )


@pytest.fixture(scope="session")
def topics_with_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two string labels (cooking, sports): 64 train, 32 validation and 16 test rows."""
    return write_topic_csvs(
        tmp_path_factory.mktemp("data") / "topics",
        ("sports", "cooking"),
        {"train": 64, "validation": 32, "test": 16},
    )


@pytest.fixture(scope="session")
def three_topics(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three labels, train only (validation must be carved): 48 rows."""
    return write_topic_csvs(
        tmp_path_factory.mktemp("data") / "three_topics", ("sports", "cooking", "travel"), {"train": 48}
    )


@pytest.fixture
def tuneyard_process() -> Iterator[Callable[..., subprocess.Popen[str]]]:
    """Start ``python -m tuneyard ARGS`` as a separate process (for signal tests); killed at teardown."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: object) -> subprocess.Popen[str]:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        process = subprocess.Popen(
            [sys.executable, "-m", "tuneyard", *map(str, args)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def evaluate_saved_model(model_folder: Path, data: Path, max_length: int = 128) -> dict[str, float]:
    """Validation metrics of a saved model, independent of the run that made it.

    Loads with ``tuneyard.load`` and evaluates with a plain HF Trainer and the task metrics.
    """
    import tempfile

    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    import tuneyard
    from tuneyard.models.loading import load_tokenizer
    from tuneyard.task_types.data_loading import load_task_data
    from tuneyard.task_types.sequence_classification.encoding import tokenize_task
    from tuneyard.task_types.sequence_classification.metrics import trainer_metrics

    model, tokenizer = tuneyard.load(model_folder), load_tokenizer(model_folder)
    task = load_task_data(data_dir=data)
    splits = tokenize_task(task, tokenizer, max_length, splits=("validation",))
    with tempfile.TemporaryDirectory() as scratch:
        args = TrainingArguments(
            output_dir=scratch, report_to="none", per_device_eval_batch_size=32, dataloader_pin_memory=False
        )
        trainer = Trainer(
            model=model,
            args=args,
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=trainer_metrics(task.spec),
        )
        metrics = trainer.evaluate(splits["validation"])
    return {key.removeprefix("eval_"): value for key, value in metrics.items()}


@pytest.fixture(scope="session")
def evaluate_folder() -> Callable[..., dict[str, float]]:
    """``evaluate_folder(model_folder, data_dir)`` -> validation metrics (``loss``, ``accuracy`` ...)."""
    return evaluate_saved_model
