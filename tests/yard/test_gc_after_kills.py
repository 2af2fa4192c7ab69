"""runs gc finds what every writer leaves when its process is killed mid-write, not only manifests.

Each verb below is a real ``python -m tuneyard`` process killed at the instant it would
publish one of its files (the saved config of a run, an eval grid's results JSON, its
heatmap PNG); gc must then list that writer's temporary file and leave nothing hidden behind.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tuneyard.cli import main


def topics(folder: Path) -> Path:
    """A two-class data folder: 24 train rows, 8 validation rows."""
    folder.mkdir(parents=True)
    for split, rows in (("train", 24), ("validation", 8)):
        with (folder / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows(
                [f"{'goal match team' if i % 2 else 'oven recipe salt'} {i}", i % 2] for i in range(rows)
            )
    return folder


def hidden_leftovers(root: Path) -> list[str]:
    """Temporary names anywhere under the yard (what an interrupted write leaves)."""
    return sorted(
        path.relative_to(root).as_posix()
        for path in root.rglob(".*")
        if path.name.startswith(".tmp-") or ".tmp" in path.suffixes or path.name.endswith(".tmp")
    )


def gc(root: Path, capsys: pytest.CaptureFixture[str]) -> list[str]:
    """``tuneyard runs gc --older-than 0``: the lines it prints."""
    capsys.readouterr()
    main(["--yard", str(root), "runs", "gc", "--older-than", "0"])
    return capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(
    ("published", "verb"),
    [
        ("config.yaml", "finetune"),
        ("eval_grid_results.json", "eval-grid"),
        ("eval_grid_heatmap.png", "eval-grid"),
    ],
)
def test_gc_removes_the_temporary_file_of_any_killed_writer(
    published: str,
    verb: str,
    tiny_model: Callable[..., Path],
    tmp_path: Path,
    run_killed_at: Callable[..., object],
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = tmp_path / "yard"
    data = topics(tmp_path / "topics")
    model = tiny_model("bert")
    if verb == "finetune":
        args = ["finetune", "--checkpoint", model, "--data", data, "--epochs", "1", "--project", "p", "-q"]
    else:  # a model outside the yard: its cell's results go under the grid folder
        args = ["eval-grid", "--models", model, "--tasks", data, "--experiment", "g", "-q"]
    killed = run_killed_at(published, "--yard", root, *args)
    assert killed.returncode == 9, killed.stderr  # type: ignore[attr-defined]  # died at that rename

    left = hidden_leftovers(root)
    assert any(published in Path(path).name for path in left), left  # the writer's temporary file
    removed = gc(root, capsys)
    assert {line.split()[1] for line in removed} >= set(left)
    assert all(line.startswith("removed  ") for line in removed)
    assert hidden_leftovers(root) == []
    if verb == "finetune":  # the run itself stays: it is resumable
        (run,) = (root / "outputs" / "p" / "topics").iterdir()
        assert json.loads((run / "manifest.json").read_text())["status"] == "running"
