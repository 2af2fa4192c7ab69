"""The committed Debian description datasets are clean, leak-free and match their PROVENANCE.md.

These files feed the demo and the slow MiniLM tests; a duplicate across splits or a
class count that drifts from the documented one would silently inflate or skew results.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import pytest

SPLITS = ("train", "validation", "test")
MAX_FOLDER_BYTES = {"debian_topics": 1_500_000, "debian_interface": 500_000}


def read_split(folder: Path, split: str) -> tuple[list[str], list[dict[str, str]]]:
    with (folder / f"{split}.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def documented_table(folder: Path) -> list[dict[str, str]]:
    """Rows of the markdown table under '## Class counts' in PROVENANCE.md, keyed by header."""
    text = (folder / "PROVENANCE.md").read_text(encoding="utf-8")
    table = text.split("## Class counts", 1)[1].split("\n## ", 1)[0]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in table.splitlines()
        if line.strip().startswith("|")
    ]
    return [dict(zip(rows[0], row)) for row in rows[2:]]


@pytest.fixture(params=["topics_data", "second_task_data"])
def dataset(request: pytest.FixtureRequest) -> Path:
    return request.getfixturevalue(request.param)


@pytest.fixture
def splits(dataset: Path) -> dict[str, list[dict[str, str]]]:
    loaded = {}
    for split in SPLITS:
        columns, rows = read_split(dataset, split)
        assert columns == ["id", "text", "label"], f"{dataset.name}/{split}.csv columns are {columns}"
        loaded[split] = rows
    return loaded


def test_texts_are_non_empty_and_trimmed(splits: dict[str, list[dict[str, str]]]) -> None:
    for split, rows in splits.items():
        assert rows, f"{split} is empty"
        for row in rows:
            assert len(row["text"].split()) >= 8, f"{split} row {row['id']} text too short: {row['text']!r}"
            assert len(row["text"]) <= 600, f"{split} row {row['id']} text is {len(row['text'])} chars"
            assert row["label"].strip() == row["label"] != ""


def test_no_id_or_text_shared_between_splits(splits: dict[str, list[dict[str, str]]]) -> None:
    ids = [row["id"] for rows in splits.values() for row in rows]
    texts = [re.sub(r"\W+", " ", row["text"].lower()) for rows in splits.values() for row in rows]
    assert [i for i, n in Counter(ids).items() if n > 1] == []
    assert [t[:80] for t, n in Counter(texts).items() if n > 1] == []


def test_label_sets_are_equal_across_splits(splits: dict[str, list[dict[str, str]]]) -> None:
    label_sets = {split: {row["label"] for row in rows} for split, rows in splits.items()}
    assert len(label_sets["train"]) >= 2
    assert label_sets["validation"] == label_sets["train"] == label_sets["test"]


def test_class_counts_match_provenance(dataset: Path, splits: dict[str, list[dict[str, str]]]) -> None:
    table = documented_table(dataset)
    assert [row["split"] for row in table] == list(SPLITS)
    for row in table:
        counts = Counter(line["label"] for line in splits[row["split"]])
        labels = [key for key in row if key not in {"split", "total", "majority-class accuracy"}]
        assert dict(counts) == {label: int(row[label]) for label in labels}, row["split"]
        assert sum(counts.values()) == int(row["total"])
        majority = max(counts.values()) / sum(counts.values())
        assert f"{majority:.4f}" == row["majority-class accuracy"]
        assert len(set(counts.values())) == 1, f"{dataset.name}/{row['split']} is not balanced: {counts}"


def test_folder_is_small(dataset: Path) -> None:
    size = sum(path.stat().st_size for path in dataset.iterdir())
    assert size <= MAX_FOLDER_BYTES[dataset.name]


def test_the_short_variant_is_each_topics_row_with_its_synopsis_alone(topics_data: Path) -> None:
    # The transfer matrix's second task: the same rows, ids, labels and splits, so a model
    # trained on either input is scored on the other's test rows (one label set).
    short = topics_data.parent / "debian_topics_short"
    for split in SPLITS:
        columns, rows = read_split(short, split)
        _, full = read_split(topics_data, split)
        assert columns == ["id", "text", "label"]
        assert [(row["id"], row["label"]) for row in rows] == [(row["id"], row["label"]) for row in full]
        for row, whole in zip(rows, full, strict=True):
            assert row["text"] and whole["text"].startswith(row["text"]), row["id"]
            assert len(row["text"]) < len(whole["text"]) and row["text"][-1] in ".!?", row["id"]
    for row in documented_table(short):
        counts = Counter(line["label"] for line in read_split(short, row["split"])[1])
        assert sum(counts.values()) == int(row["total"]) and len(set(counts.values())) == 1
