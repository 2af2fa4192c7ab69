"""The real MiniLM (all-MiniLM-L6-v2) on a real task (Debian package descriptions -> 6 sections).

Balanced classes: the majority-class baseline is 1/6. Full fine-tuning must learn well
above it; a whitening-compressed copy of the fine-tuned model loses accuracy, and
fine-tuning its low-rank factors wins most of it back. The data is a balanced slice of
the task (``minilm_runs``); LoRA on the same model is ``test_minilm_lora.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from minilm_runs import COMMON, MAJORITY, assert_files_report, debian_slice_fixture  # noqa: F401

from tuneyard.train.options import FinetuneOptions
from tuneyard.train.recipe import finetune
from tuneyard.yard.root import Yard

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def yard(tmp_path_factory: pytest.TempPathFactory) -> Yard:
    return Yard.open(tmp_path_factory.mktemp("minilm_yard"))


@pytest.fixture(scope="module")
def full_run(minilm: Path, debian_slice: Path, yard: Yard):  # type: ignore[no-untyped-def]
    options = FinetuneOptions(
        checkpoint=str(minilm),
        data=str(debian_slice),
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


def test_fine_tuning_a_compressed_minilm_recovers_accuracy(
    full_run, debian_slice, yard, evaluate_folder
) -> None:  # type: ignore[no-untyped-def]
    from tuneyard.compress.compressor import compress_model
    from tuneyard.compress.options import CompressOptions

    dense = full_run.best_metrics["accuracy"]
    compressed = compress_model(
        CompressOptions(
            model=str(full_run.path / "best"),
            method="whiten",
            rank="attn=24,ffn=48",
            data=str(debian_slice),
            calib_samples=128,
            max_length=COMMON["max_length"],
        ),
        yard,
    ).path
    after_compression = evaluate_folder(compressed, debian_slice, COMMON["max_length"])["accuracy"]
    assert after_compression < dense - 0.05, "the rank should be low enough to cost accuracy"

    options = FinetuneOptions(
        checkpoint=str(compressed), data=str(debian_slice), epochs=2, learning_rate=1e-4, **COMMON
    )
    result = finetune(options, yard)
    assert result.path.parent.name == "whiten"  # models/finetuned/bert/whiten/<compressed name>
    recovered = result.best_metrics["accuracy"]
    assert recovered > after_compression + 0.5 * (dense - after_compression), (
        dense,
        after_compression,
        recovered,
    )
