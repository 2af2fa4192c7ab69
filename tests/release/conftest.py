"""A yard with two real LoRA runs of a tiny BERT on the Debian topics, to release."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from tuneyard.cli import main

QUICK = ("--strategy", "lora", "--epochs", "1", "--batch-size", "16", "--max-length", "32", "--quiet")


@dataclass(frozen=True)
class RunsYard:
    """A yard holding two complete runs of one model line, ``first`` then ``second``."""

    root: Path
    first: Path
    second: Path


def few_rows(source: Path, target: Path, rows: int = 64) -> Path:
    """The first ``rows`` rows of each split of ``source`` (a release needs a run, not a good one)."""
    target.mkdir(parents=True)
    for split in ("train", "validation"):
        lines = (source / f"{split}.csv").read_text().splitlines(keepends=True)
        (target / f"{split}.csv").write_text("".join(lines[: rows + 1]))
    return target


@pytest.fixture(scope="package")
def runs_yard(tmp_path_factory: pytest.TempPathFactory, tiny_model, topics_data: Path) -> RunsYard:  # type: ignore[no-untyped-def]
    """Built once for the package; each test releases in its own copy (:func:`yard`)."""
    root = tmp_path_factory.mktemp("release") / "yard"
    data = few_rows(topics_data, tmp_path_factory.mktemp("data") / "debian_topics")
    base = tiny_model("bert", num_labels=6)
    runs = []
    for name, learning_rate in (("topics-a", "1e-3"), ("topics-b", "3e-3")):
        args = ["--yard", str(root), "finetune", "--checkpoint", str(base), "--data", str(data)]
        main([*args, "--name", name, "--learning-rate", learning_rate, *QUICK])  # raises on failure
        runs.append(next(root.glob(f"**/{name}")))
    return RunsYard(root, *runs)


@pytest.fixture
def yard(runs_yard: RunsYard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> RunsYard:
    """A private copy of :func:`runs_yard`, selected through TUNEYARD_HOME."""
    root = tmp_path / "yard"
    shutil.copytree(runs_yard.root, root)
    monkeypatch.setenv("TUNEYARD_HOME", str(root))
    return RunsYard(
        root,
        root / runs_yard.first.relative_to(runs_yard.root),
        root / runs_yard.second.relative_to(runs_yard.root),
    )
