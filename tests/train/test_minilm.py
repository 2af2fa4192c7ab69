"""The real MiniLM (all-MiniLM-L6-v2) on a real task (Debian package descriptions -> 6 sections).

Balanced classes: the majority-class baseline is 1/6. Full fine-tuning and LoRA must
learn well above it; a whitening-compressed copy of the fine-tuned model loses
accuracy, and fine-tuning its low-rank factors wins most of it back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tuneyard.train.options import FinetuneOptions
from tuneyard.train.recipe import finetune
from tuneyard.yard.root import Yard

pytestmark = pytest.mark.slow

MAJORITY = 1 / 6
COMMON = {"max_length": 64, "batch_size": 32, "seed": 0}


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Yard:
    return Yard.open(tmp_path_factory.mktemp("minilm_yard"))


@pytest.fixture(scope="module")
def full_run(minilm: Path, topics_data: Path, yard: Yard):  # type: ignore[no-untyped-def]
    options = FinetuneOptions(
        checkpoint=str(minilm),
        data=str(topics_data),
        strategy="full",
        epochs=1,
        learning_rate=1e-4,
        project="minilm",
        **COMMON,
    )
    return finetune(options, yard)


def test_full_fine_tuning_learns(full_run) -> None:  # type: ignore[no-untyped-def]
    assert full_run.path.name == "minilm_l6_full"
    assert full_run.best_metrics["accuracy"] > MAJORITY + 0.5, full_run.best_metrics
    assert_files_report(full_run.path, full_run.best_metrics["accuracy"])


def assert_files_report(run: Path, accuracy: float) -> None:
    """What a user reads: the log's best accuracy and the manifest's are the run's."""
    import csv
    import json

    with open(run / "training_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and max(float(row["accuracy"]) for row in rows) == pytest.approx(accuracy)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["metrics"]["debian_topics"]["accuracy"] == pytest.approx(accuracy)


def test_lora_on_chosen_layers_learns(minilm: Path, topics_data: Path, yard: Yard) -> None:
    options = FinetuneOptions(
        checkpoint=str(minilm),
        data=str(topics_data),
        strategy="lora",
        epochs=1,
        learning_rate=1e-3,
        lora={"r": 8, "layers": "2-5"},
        project="minilm",
        **COMMON,
    )
    result = finetune(options, yard)
    assert result.path.name == "minilm_l6_lora_2-5"
    assert result.best_metrics["accuracy"] > MAJORITY + 0.4, result.best_metrics
    assert_files_report(result.path, result.best_metrics["accuracy"])
    import json

    adapter = json.loads((result.path / "best" / "adapter_config.json").read_text())
    assert adapter["layers_to_transform"] == [2, 3, 4, 5] and adapter["r"] == 8


def test_fine_tuning_a_compressed_minilm_recovers_accuracy(
    full_run, topics_data, yard, evaluate_folder
) -> None:  # type: ignore[no-untyped-def]
    from tuneyard.compress.compressor import compress_model
    from tuneyard.compress.options import CompressOptions

    dense = full_run.best_metrics["accuracy"]
    compressed = compress_model(
        CompressOptions(
            model=str(full_run.path / "best"),
            method="whiten",
            rank="attn=24,ffn=48",
            data=str(topics_data),
            calib_samples=128,
            max_length=64,
        ),
        yard,
    ).path
    after_compression = evaluate_folder(compressed, topics_data, 64)["accuracy"]
    assert after_compression < dense - 0.05, "the rank should be low enough to cost accuracy"

    options = FinetuneOptions(
        checkpoint=str(compressed), data=str(topics_data), epochs=1, learning_rate=1e-4, **COMMON
    )
    result = finetune(options, yard)
    assert result.path.parent.name == "whiten"  # models/finetuned/bert/whiten/<compressed name>
    recovered = result.best_metrics["accuracy"]
    assert recovered > after_compression + 0.5 * (dense - after_compression), (
        dense,
        after_compression,
        recovered,
    )
