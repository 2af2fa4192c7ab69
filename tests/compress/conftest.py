"""Fixtures for compression tests: a small labelled text dataset written as CSV files."""

from __future__ import annotations

import csv
import random
from pathlib import Path

import pytest

POSITIVE = ["good", "great", "fine", "fun", "lovely", "superb", "bright", "warm", "clever"]
NEGATIVE = ["bad", "awful", "boring", "sad", "dull", "weak", "grim", "cold", "clumsy"]
NEUTRAL = ["the", "a", "movie", "film", "plot", "actor", "scene", "story", "music", "ending"]


def write_sentiment_csvs(folder: Path, rows: dict[str, int], seed: int = 0, labelled: bool = True) -> Path:
    """Write ``train.csv`` / ``validation.csv`` / ... with sentences whose words carry the label."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for split, count in rows.items():
        with open(folder / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"] if labelled else ["text"])
            for index in range(count):
                label = index % 2
                cue = POSITIVE if label else NEGATIVE
                words = rng.choices(NEUTRAL, k=rng.randint(4, 10)) + rng.choices(cue, k=rng.randint(1, 3))
                rng.shuffle(words)
                writer.writerow([" ".join(words), label] if labelled else [" ".join(words)])
    return folder


@pytest.fixture(scope="session")
def sentiment_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A labelled two-class dataset: 96 train rows, 32 validation rows."""
    return write_sentiment_csvs(
        tmp_path_factory.mktemp("data") / "sentiment", {"train": 96, "validation": 32}
    )


@pytest.fixture(scope="session")
def unlabelled_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same kind of text without a label column."""
    return write_sentiment_csvs(
        tmp_path_factory.mktemp("data") / "unlabelled", {"train": 32, "validation": 8}, labelled=False
    )
