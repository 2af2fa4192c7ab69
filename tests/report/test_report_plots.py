"""Reports: every PNG exists, is a valid PNG and is not blank; errors are clear."""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tuneyard.components.confusion import plot_confusion_matrix
from tuneyard.errors import ArtifactExistsError, TuneyardError
from tuneyard.report.build import build_report, find_artifacts
from tuneyard.yard import Manifest, write_manifest

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_real_png(path: Path, min_std: float = 0.03) -> np.ndarray:
    """A valid PNG whose pixels vary (a blank or single-colour image fails)."""
    from matplotlib.image import imread

    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert pixels[..., :3].std() > min_std, f"{path.name} looks blank"
    return pixels


def write_training_log(folder: Path, steps: int = 5) -> Path:
    """A training_log.csv in the finetune engineer's format (one row per evaluation)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "training_log.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "step", "train_loss", "val_loss", "accuracy", "f1_macro", "lr"])
        for i in range(1, steps + 1):
            writer.writerow(
                [i / 2, i * 10, 1.2 / i, 1.0 / i + 0.1, 0.5 + 0.08 * i, 0.45 + 0.08 * i, 2e-5 * (1 - i / 6)]
            )
    return path


def make_run(root: Path, name: str, accuracy: float) -> Path:
    run = root / name
    write_training_log(run)
    write_manifest(
        run,
        Manifest(
            kind="run",
            name=name,
            path=name,
            status="complete",
            metrics={"toy": {"accuracy": accuracy, "f1_macro": accuracy - 0.05}},
        ),
    )
    return run


def test_confusion_matrix_png_is_real(tmp_path: Path) -> None:
    target = tmp_path / "cm.png"
    plot_confusion_matrix(np.array([[5, 1], [2, 7]]), ["neg", "pos"], target, "toy")
    assert_real_png(target)


def test_run_report_draws_training_curves_and_weights(
    tmp_path: Path, tiny_model: Callable[..., Path]
) -> None:
    run = make_run(tmp_path, "bert_full", 0.8)
    shutil.copytree(tiny_model("bert", layers=3), run / "best")
    report = build_report(run)
    assert sorted(p.name for p in report.plots) == ["bert_full_training_curves.png", "bert_full_weights.png"]
    for plot in report.plots:
        assert plot.parent == run / "report"
        assert_real_png(plot)


def test_second_report_replaces_the_first_only_with_force_and_never_a_foreign_folder(tmp_path: Path) -> None:
    run = make_run(tmp_path, "r", 0.8)
    build_report(run)
    first = (run / "report" / "r_training_curves.png").read_bytes()
    (run / "report" / "old_extra_plot.png").write_bytes(first)
    with pytest.raises(ArtifactExistsError, match="add --force"):
        build_report(run)
    assert sorted(p.name for p in (run / "report").iterdir()) == [
        "old_extra_plot.png",
        "r_training_curves.png",
    ]
    build_report(run, force=True)
    assert sorted(p.name for p in (run / "report").iterdir()) == ["r_training_curves.png"]
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    for force in (False, True):
        with pytest.raises(TuneyardError, match="holds files other than an earlier report"):
            build_report(run, output_dir=foreign, force=force)
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    assert (foreign / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("arch", ["gpt2", "llama", "modernbert"])
def test_weights_plot_for_every_family(arch: str, tmp_path: Path, tiny_model: Callable[..., Path]) -> None:
    report = build_report(tiny_model(arch), output_dir=tmp_path / "out")
    assert [p.name for p in report.plots] == [f"{tiny_model(arch).name}_weights.png"]
    assert_real_png(report.plots[0])


def test_compressed_model_weights_mark_rank_and_energy(
    tmp_path: Path, tiny_model: Callable[..., Path], run_cli: Callable[[list[str]], int]
) -> None:
    from tuneyard.models.compressed_folder import read_compression_info
    from tuneyard.models.layout import layout_of
    from tuneyard.report.weights import analyse_weights, energy_kept
    from tuneyard.task_types.model_loading import load

    base = tmp_path / "base"
    shutil.copytree(tiny_model("bert", layers=2), base)
    compressed = tmp_path / "compressed"
    assert (
        run_cli(
            [
                "--yard",
                str(tmp_path),
                "compress",
                "--model",
                str(base),
                "--method",
                "standard",
                "--rank",
                "8",
                "--output-dir",
                str(compressed),
            ]
        )
        == 0
    )
    assert {layer.rank for layer in read_compression_info(compressed).layers.values()} == {8}

    model = load(compressed)
    layers = analyse_weights(model, layout_of(model))
    assert {layer.rank for layer in layers.values()} == {8}
    base_model = load(base)
    base_layers = analyse_weights(base_model, layout_of(base_model))
    query = base_layers[("attention.self.query", 0)].spectrum
    # energy kept = top-8 squared singular values over all of them, for a 32 x 32 random weight
    assert energy_kept(query, 8) == pytest.approx((query[:8] ** 2).sum() / (query**2).sum())
    assert 0 < energy_kept(query, 8) < 1 and energy_kept(query, 32) == pytest.approx(1.0)

    report = build_report(compressed, output_dir=tmp_path / "out")
    assert report.notes == []
    assert_real_png(report.plots[0])


def test_project_report_compares_runs_and_draws_grid_heatmap(tmp_path: Path) -> None:
    project = tmp_path / "project"
    run_a = make_run(project, "run_a", 0.81)
    make_run(project, "run_b", 0.67)
    (run_a / "best").mkdir()
    write_manifest(
        run_a / "best", Manifest(kind="finetuned", name="best", metrics={"toy": {"accuracy": 0.1}})
    )
    assert [folder.name for folder, _ in find_artifacts(project)] == [
        "run_a",
        "run_b",
    ]  # best/ belongs to run_a
    grid = project / "grid"
    grid.mkdir()
    cell = {
        "split": "validation",
        "status": "complete",
        "main_metric": "accuracy",
        "results": "x",
        "error": None,
        "created": "now",
    }
    (grid / "eval_grid_results.json").write_text(
        json.dumps(
            {
                "split": "validation",
                "models": [{"key": "m1", "label": "m1"}, {"key": "m2", "label": "m2"}],
                "tasks": [{"key": "t1", "label": "t1"}, {"key": "t2", "label": "t2"}],
                "cells": [
                    {**cell, "model": m, "task": t, "metrics": {"accuracy": v}}
                    for (m, t), v in {("m1", "t1"): 0.9, ("m1", "t2"): 0.4, ("m2", "t1"): 0.6}.items()
                ],
            }
        )
    )
    report = build_report(project)
    assert sorted(p.name for p in report.plots) == [
        "comparison_toy.accuracy.png",
        "grid_eval_grid_heatmap.png",
        "run_a_training_curves.png",
        "run_b_training_curves.png",
    ]
    for plot in report.plots:
        assert_real_png(plot)
    chosen = build_report(project, metric="toy.f1_macro", output_dir=tmp_path / "f1")
    assert "comparison_toy.f1_macro.png" in [p.name for p in chosen.plots]


def test_unknown_metric_and_empty_folder_are_clear_errors(tmp_path: Path) -> None:
    project = tmp_path / "project"
    make_run(project, "run_a", 0.8)
    make_run(project, "run_b", 0.7)
    with pytest.raises(TuneyardError, match="no artifact under the report path has metric 'sst2.accuracy'"):
        build_report(project, metric="sst2.accuracy")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TuneyardError, match="nothing to report"):
        build_report(empty)
    assert not (empty / "report").exists()


def test_report_cli_prints_the_plots(
    tmp_path: Path, run_cli: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    run = make_run(tmp_path, "r", 0.8)
    assert run_cli(["report", str(run)]) == 0
    assert capsys.readouterr().out.strip() == str(run / "report" / "r_training_curves.png")
    assert run_cli(["report", str(tmp_path / "missing")]) == 2
    assert "is not a folder" in capsys.readouterr().err


def test_training_curves_plot_headline_metrics_not_bookkeeping(tmp_path: Path) -> None:
    from tuneyard.report.curves import metric_columns, read_training_log

    log = tmp_path / "training_log.csv"
    log.write_text(
        "epoch,step,train_loss,val_loss,accuracy,precision_macro,runtime,samples_per_second,lr\n"
        "1,10,0.9,0.8,0.7,0.6,3.2,100,1e-5\n2,20,,0.7,0.75,0.65,3.1,101,\n"
    )
    columns = read_training_log(log)
    assert metric_columns(columns) == ["accuracy"]
    assert columns["train_loss"][0] == 0.9 and columns["train_loss"][1] != columns["train_loss"][1]  # NaN
