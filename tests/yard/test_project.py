"""A project's metrics.csv: the completed runs filed under outputs/{project}/, one row each."""

from __future__ import annotations

import csv
from pathlib import Path

from tuneyard.yard import Manifest, Yard
from tuneyard.yard.project import refresh_project_metrics
from tuneyard.yard.writer import RunWriter


def start(yard: Yard, name: str, project: str = "clic", output_dir: Path | None = None) -> RunWriter:
    target = yard.target_path("run", output_dir, project=project, dataset="recanvo", name=name)
    return yard.start_run(Manifest(kind="run", name=name, project=project), target)


def test_rows_are_the_projects_completed_runs_in_its_folder_only(yard: Yard, tmp_path: Path) -> None:
    finished = start(yard, "whisper_tiny_lora_012")
    finished.manifest.metrics = {"recanvo": {"accuracy": 0.75}}
    finished.complete()
    start(yard, "whisper_tiny_full")  # still running
    # a run of the project filed outside outputs/clic (a grid cell, --output-dir):
    start(yard, "cell", output_dir=tmp_path / "grid" / "cell").complete()
    start(yard, "wav2vec2_base_frozen", project="other").complete()

    target = refresh_project_metrics(yard, "clic")
    assert target == yard.root / "outputs" / "clic" / "metrics.csv"
    rows = list(csv.DictReader(target.open()))
    assert [(row["name"], row["metrics.recanvo.accuracy"]) for row in rows] == [
        ("whisper_tiny_lora_012", "0.75")
    ]
    assert not [path.name for path in target.parent.iterdir() if path.name.startswith(".tmp-")]


def test_no_metrics_csv_where_the_layout_gives_a_project_no_folder(yard: Yard) -> None:
    (yard.root / "tuneyard.yaml").write_text("layout:\n  run: runs/{dataset}/{project}-{name}\n")
    assert refresh_project_metrics(Yard.open(yard.root), "clic") is None
    assert refresh_project_metrics(yard, "never-ran") is None  # default layout, no folder yet
