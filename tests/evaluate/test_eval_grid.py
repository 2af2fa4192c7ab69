"""The transfer grid: every cell filed, interrupted grids resume with only the missing cells."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import tuneyard.evaluate.transfer_grid as grid_module
from tuneyard.evaluate.model_eval import evaluate_model
from tuneyard.evaluate.options import GridOptions
from tuneyard.evaluate.transfer_grid import run_grid
from tuneyard.yard import Yard, read_manifest


def png_pixels(path: Path) -> np.ndarray:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return imread(path)


class Interrupted(BaseException):
    """Stands in for Ctrl-C or a killed process (pytest reserves KeyboardInterrupt for itself)."""


class CountingEval:
    """Wraps evaluate_model: counts calls, and raises :class:`Interrupted` on call ``stop_at``."""

    def __init__(self, stop_at: int | None = None) -> None:
        self.calls: list[str] = []
        self.stop_at = stop_at

    def __call__(self, model: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
        if self.stop_at is not None and len(self.calls) + 1 == self.stop_at:
            raise Interrupted
        self.calls.append(f"{Path(model).name}x{data.spec.name}")
        return evaluate_model(model, data, *args, **kwargs)


def test_interrupted_grid_resumes_computing_only_the_missing_cells(
    tmp_path: Path,
    yard: Yard,
    run_in_yard: Callable[..., Path],
    tiny_model: Callable[..., Path],
    data_folder: Callable[..., Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run = run_in_yard("bert")
    outside = tiny_model("roberta")
    tasks = [str(data_folder(rows=6, name="alpha")), str(data_folder(rows=6, name="beta"))]
    options = GridOptions(models=[str(run), str(outside)], tasks=tasks, experiment="transfer", batch_size=4)

    first = CountingEval(stop_at=3)
    monkeypatch.setattr(grid_module, "evaluate_model", first)
    with pytest.raises(Interrupted):
        run_grid(options, yard)
    folder = yard.root / "experiments" / "transfer"
    saved = json.loads((folder / "eval_grid_results.json").read_text())
    assert [(c["task"].split("/")[-1], c["status"]) for c in saved["cells"]] == [
        ("alpha", "complete"),
        ("beta", "complete"),
    ]

    second = CountingEval()
    monkeypatch.setattr(grid_module, "evaluate_model", second)
    progress: list[tuple[int, str]] = []
    result = run_grid(options, yard, lambda n, total, m, t, state: progress.append((n, state)))
    assert second.calls == [f"{outside.name}xalpha", f"{outside.name}xbeta"]
    assert result.computed == 2
    assert progress == [(1, "skipped"), (2, "skipped"), (3, "complete"), (4, "complete")]

    saved = json.loads((folder / "eval_grid_results.json").read_text())
    assert len(saved["cells"]) == 4 and all(c["status"] == "complete" for c in saved["cells"])
    assert all(c["results"] and c["created"] and "accuracy" in c["metrics"] for c in saved["cells"])
    assert [m["label"] for m in saved["models"]] == ["run1", outside.name]
    # the run in the yard got its results and manifest metrics; the outside model's stay in the grid folder
    assert {"alpha", "beta"} <= set(read_manifest(run).metrics)
    assert (folder / "evaluation_results" / outside.name / "alpha_validation" / "predictions.csv").is_file()
    assert read_manifest(folder).kind == "experiment" and read_manifest(folder).status == "complete"
    pixels = png_pixels(folder / "eval_grid_heatmap.png")
    assert pixels.std() > 0.05

    assert run_grid(options, yard).computed == 0


def test_failed_cell_is_recorded_and_retried_not_fatal(
    tmp_path: Path, yard: Yard, tiny_model: Callable[..., Path], data_folder: Callable[..., Path]
) -> None:
    tasks = [str(data_folder(rows=6, name="two")), str(data_folder(("a", "b", "c"), rows=6, name="three"))]
    options = GridOptions(models=[str(tiny_model("bert"))], tasks=tasks, output_dir=str(tmp_path / "grid"))
    result = run_grid(options, yard)
    statuses = {Path(key[1]).name: cell.status for key, cell in result.cells.items()}
    assert statuses == {"two": "complete", "three": "failed"}
    failed = next(cell for cell in result.cells.values() if cell.status == "failed")
    assert "model has 2 classes but the data of 'three' has 3" in (failed.error or "")
    assert run_grid(options, yard).computed == 1  # the failed cell is tried again
    assert not (yard.root / "experiments").exists() and yard.index.count() == 0


def test_eval_grid_cli_takes_several_values_per_flag_and_resumes(
    tmp_path: Path,
    yard: Yard,
    tiny_model: Callable[..., Path],
    data_folder: Callable[..., Path],
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    a, b = str(tiny_model("bert")), str(tiny_model("gpt2"))
    tasks = [str(data_folder(rows=5, name="t1")), str(data_folder(rows=5, name="t2"))]
    args = [
        "--yard",
        str(yard.root),
        "eval-grid",
        "--models",
        a,
        b,
        "--tasks",
        *tasks,
        "--output-dir",
        str(tmp_path / "grid"),
        "--quiet",
    ]
    assert run_cli(args) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines()[0].split() == ["model", "t1", "t2"]
    assert "computed 4 cell(s)" in captured.err
    assert run_cli(args) == 0
    captured = capsys.readouterr()
    assert "computed 0 cell(s)" in captured.err and captured.err.count("skipped") == 4


def test_eval_grid_cli_reads_a_yaml_config(
    tmp_path: Path,
    yard: Yard,
    tiny_model: Callable[..., Path],
    data_folder: Callable[..., Path],
    run_cli: Callable[[list[str]], int],
) -> None:
    config = tmp_path / "grid.yaml"
    config.write_text(
        f"models: [{tiny_model('bert')}]\ntasks: [{data_folder(rows=5, name='t1')}]\nbatch_size: 2\n"
    )
    assert run_cli(["--yard", str(yard.root), "eval-grid", "--config", str(config), "--quiet"]) == 0
    saved = json.loads((yard.root / "experiments" / "eval_grid" / "eval_grid_results.json").read_text())
    assert len(saved["cells"]) == 1


def test_eval_grid_cli_rejects_stray_arguments(
    yard: Yard, run_cli: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(["--yard", str(yard.root), "eval-grid", "stray", "--models", "x"]) == 2
    assert "unexpected argument 'stray'" in capsys.readouterr().err


def test_eval_grid_cli_exits_1_when_a_cell_failed(
    tmp_path: Path,
    yard: Yard,
    tiny_model: Callable[..., Path],
    data_folder: Callable[..., Path],
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    three = str(data_folder(("a", "b", "c"), rows=5, name="three"))
    args = [
        "--yard",
        str(yard.root),
        "eval-grid",
        "--models",
        str(tiny_model("bert")),
        "--tasks",
        three,
        "--output-dir",
        str(tmp_path / "grid"),
        "--quiet",
    ]
    assert run_cli(args) == 1
    assert "failed: " in capsys.readouterr().err
