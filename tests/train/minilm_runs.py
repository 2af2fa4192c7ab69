"""What the real-MiniLM fine-tuning tests share: a balanced slice of the real Debian topics task.

Those tests claim that the real model learns a real task (well above the 1/6 majority
baseline), not how far it gets on all of it: the first 160 train and 30 validation rows of
each of the 6 sections (the files are shuffled), cut at 32 tokens (the short description
and the start of the long one), show it at a fraction of the cost of the 1,602 rows at 64
tokens. Two files use it (``--dist loadfile`` gives each its own worker).
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest

MAJORITY = 1 / 6
ROWS_PER_SECTION = {"train": 160, "validation": 30}
COMMON = {"max_length": 32, "batch_size": 16, "seed": 0}


def write_debian_slice(source: Path, target: Path, per_label: dict[str, int]) -> Path:
    """The first ``per_label[split]`` rows of each label of ``source``'s split CSVs, in file order."""
    target.mkdir(parents=True)
    for split, count in per_label.items():
        with open(source / f"{split}.csv", newline="") as handle:
            reader = csv.DictReader(handle)
            fields, rows = reader.fieldnames or [], list(reader)
        taken: Counter[str] = Counter()
        with open(target / f"{split}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fields)
            writer.writeheader()
            for row in rows:
                if taken[row["label"]] < count:
                    taken[row["label"]] += 1
                    writer.writerow(row)
    return target


# Named through ``name=``: a test file imports the function, and its tests' ``debian_slice``
# parameter does not shadow an imported name.
@pytest.fixture(scope="session", name="debian_slice")
def debian_slice_fixture(topics_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """960 train and 180 validation rows of data/debian_topics, balanced; named like it."""
    return write_debian_slice(
        topics_data, tmp_path_factory.mktemp("data") / "debian_topics", ROWS_PER_SECTION
    )


def assert_files_report(run: Path, accuracy: float) -> None:
    """What a user reads: the log's best accuracy and the manifest's are the run's."""
    with open(run / "training_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and max(float(row["accuracy"]) for row in rows) == pytest.approx(accuracy)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["metrics"]["debian_topics"]["accuracy"] == pytest.approx(accuracy)
