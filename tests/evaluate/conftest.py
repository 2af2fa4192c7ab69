"""Fixtures for eval tests: small labelled CSV folders and models filed in a yard."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tuneyard.yard import Manifest, Yard, write_manifest

WORDS = ("apple", "river", "stone", "cloud", "green", "quiet", "rapid", "paper", "light", "storm")


def write_split(path: Path, labels: list[str], pair: bool = False) -> None:
    """A CSV of ``len(labels)`` rows with texts of varied length and the given labels."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "text", "label"] + (["text_pair"] if pair else []))
        for i, label in enumerate(labels):
            text = " ".join(WORDS[(i + k) % len(WORDS)] for k in range(1 + (i * 7) % 23))
            writer.writerow([f"ex{i}", text, label] + ([text[::-1]] if pair else []))


@pytest.fixture
def data_folder(tmp_path: Path) -> Callable[..., Path]:
    """Factory: a local data folder with train/validation/test CSVs over ``labels``."""

    def make(labels: tuple[str, ...] = ("neg", "pos"), rows: int = 24, name: str = "toy") -> Path:
        folder = tmp_path / name
        for split in ("train", "validation", "test"):
            write_split(folder / f"{split}.csv", [labels[i % len(labels)] for i in range(rows)])
        return folder

    return make


@pytest.fixture
def yard(tmp_path: Path) -> Yard:
    root = tmp_path / "yard"
    root.mkdir()
    return Yard.open(root)


@pytest.fixture
def run_in_yard(yard: Yard, tiny_model: Callable[..., Path]) -> Callable[..., Path]:
    """Factory: a run folder in the yard whose ``best/`` (or ``subfolder``) is a tiny model."""

    def make(arch: str = "bert", num_labels: int = 2, name: str = "run1", subfolder: str = "best") -> Path:
        target = yard.target_path("run", project="proj", dataset="toy", name=name)
        shutil.copytree(tiny_model(arch, num_labels=num_labels), target / subfolder)
        manifest = Manifest(kind="run", name=name, path=yard.relative(target), status="complete", arch=arch)
        write_manifest(target, manifest)
        yard.register(manifest)
        return target

    return make


@pytest.fixture
def run_cli() -> Callable[[list[str]], int]:
    """Run ``tuneyard ARGS`` in this process and return its exit code."""
    from tuneyard.cli import main

    def run(args: list[str]) -> int:
        try:
            main(args)
        except SystemExit as exit_info:
            return int(exit_info.code or 0)
        return 0

    return run
