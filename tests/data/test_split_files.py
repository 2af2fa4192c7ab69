"""Split files in every supported format read to the same rows, with the task's columns."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tuneyard.task_types.data_loading import load_task_data

ROWS = [
    {"id": "a", "text": 'a "quoted", comma', "label": "net"},
    {"id": "b", "text": "two\nlines", "label": "games"},
    {"id": "c", "text": "NA", "label": "net"},
]


def write(folder: Path, split: str, fmt: str) -> None:
    path = folder / f"{split}.{fmt}"
    if fmt in ("csv", "tsv"):
        import csv

        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(ROWS[0]), delimiter="\t" if fmt == "tsv" else ",")
            writer.writeheader()
            writer.writerows(ROWS)
    elif fmt == "jsonl":
        path.write_text("".join(json.dumps(row) + "\n" for row in ROWS))
    elif fmt == "json":
        path.write_text(json.dumps(ROWS))
    else:
        pq.write_table(pa.Table.from_pylist(ROWS), path)


@pytest.mark.parametrize("fmt", ["csv", "tsv", "jsonl", "json", "parquet"])
def test_every_format_reads_the_same_rows(fmt: str, tmp_path: Path) -> None:
    for split in ("train", "validation"):
        write(tmp_path, split, fmt)
    data = load_task_data(data_dir=tmp_path)
    train = data.split("train")
    assert train["text"] == [row["text"] for row in ROWS]  # quotes, newlines and "NA" kept as text
    assert data.spec.label_names == ("games", "net")
    assert train["label"] == [1, 0, 1] and train["id"] == ["a", "b", "c"]


def test_a_carved_validation_split_keeps_string_labels_and_their_shares() -> None:
    from datasets import Dataset

    from tuneyard.data.loading import carve_validation

    rows = Dataset.from_dict({"text": [f"row {i}" for i in range(40)], "label": ["cooking", "sports"] * 20})
    train, validation = carve_validation(rows, 0.25, seed=0)
    assert sorted(validation["label"]) == ["cooking"] * 5 + ["sports"] * 5
    assert sorted(set(train["label"])) == ["cooking", "sports"] and len(train) == 30
    assert train.features["label"].dtype == "string"
