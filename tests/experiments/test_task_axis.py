"""The task axis: each start trained on each task, every run scored on every task (the transfer matrix)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml
from topic_data import write_topic_csvs

ROWS = {"train": 32, "validation": 8, "test": 12}


def write_transfer_experiment(tmp_path: Path, model: Path) -> tuple[Path, Path, Path]:
    """Two tasks over one label set (other rows, other seed), a full fine-tune on each, both evaluated."""
    near = write_topic_csvs(tmp_path / "near", ("sports", "cooking"), ROWS, seed=1)
    far = write_topic_csvs(tmp_path / "far", ("sports", "cooking"), ROWS, seed=2)
    spec = {
        "experiment": "transfer",
        "finetuning": {
            "models": [str(model)], "tasks": [str(near), str(far)], "strategies": ["full"], "epochs": 1,
            "batch_size": 8, "learning_rate": 1e-3, "options": {"max_length": 32},
        },
        "evals": {"tasks": [str(near), str(far)], "split": "test"},
    }  # fmt: skip
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path, near, far


def test_each_start_trains_on_each_task_and_every_run_is_scored_on_every_task(
    cli, tiny_model, tmp_path
) -> None:
    path, near, far = write_transfer_experiment(tmp_path, tiny_model("bert"))
    yard = tmp_path / "yard"
    plan = cli("--yard", yard, "grid", path, "--dry-run")
    assert plan.exit_code == 0, plan.stderr
    names = [line.split()[1] for line in plan.stdout.splitlines()[1:-1]]
    assert names == ["tiny-bert-l2-c2-near-full-s42", "tiny-bert-l2-c2-far-full-s42"]  # the task in the key

    result = cli("--yard", yard, "grid", path)
    assert result.exit_code == 0, result.stderr
    folder = yard / "experiments" / "transfer"
    with (folder / "metrics.csv").open() as handle:
        rows = {Path(row["task"]).name: row for row in csv.DictReader(handle)}
    assert rows.keys() == {"near", "far"} and {row["state"] for row in rows.values()} == {"complete"}
    runs = {name: json.loads((yard / row["run"] / "manifest.json").read_text()) for name, row in rows.items()}
    assert {name: Path(run["config"]["data"]).name for name, run in runs.items()} == {
        "near": "near",
        "far": "far",
    }

    document = json.loads((folder / "eval_grid_results.json").read_text())
    cells = {
        (Path(cell["model"]).parent.name.split("-")[4], Path(cell["task"]).name): cell["metrics"]["accuracy"]
        for cell in document["cells"]
    }
    assert len(cells) == 4 and all(0 <= score <= 1 for score in cells.values())  # trained on x evaluated on
    for trained, row in rows.items():  # metrics.csv is the matrix: its row of a run = that run's evals
        assert [float(row[task]) for task in ("near", "far")] == [
            cells[(trained, "near")],
            cells[(trained, "far")],
        ]
    assert (folder / "transfer_heatmap.png").stat().st_size > 10_000
    assert "transfer matrix (trained on x evaluated on)" in result.stderr

    again = cli("--yard", yard, "grid", path)
    assert again.exit_code == 0 and "ran 0 cell(s) of 2" in again.stderr


def test_a_file_with_several_tasks_trains_on_each_and_rules_may_name_a_task(tmp_path) -> None:
    from tuneyard.errors import ConfigError
    from tuneyard.experiments.spec import load_experiment

    tasks = "".join(
        f"{name}: {{dataset: d, user_prompt: '{{{{ text }}}}', assistant_text_column: label}}\n"
        for name in ("sections", "interface")
    )
    path = tmp_path / "config.yaml"
    path.write_text(tasks + "finetuning: {model_path: base/a, lora_ranks: [4]}\nevals: {}\n")
    spec = load_experiment(path)
    assert spec.finetuning is not None and spec.evals is not None
    assert spec.finetuning.tasks == ["sections", "interface"] and spec.evals.tasks == [
        "sections",
        "interface",
    ]
    assert spec.warnings == []  # seed 002's meaning, nothing to warn about
    path.write_text(tasks + "finetuning: {model_path: base/a, exclude: [{task: interface, lora_rank: 4}]}\n")
    assert load_experiment(path).finetuning.exclude == [{"task": "interface", "lora_rank": 4}]  # type: ignore[union-attr]
    path.write_text(tasks + "finetuning: {model_path: base/a, task: interface, data: d}\n")
    with pytest.raises(ConfigError, match="give one of data, task or tasks, not data and task"):
        load_experiment(path)
    path.write_text(tasks + "finetuning: {model_path: base/a, tasks: [sections, interfase]}\n")
    with pytest.raises(ConfigError, match="'interfase' is neither a task of the file nor a data folder"):
        load_experiment(path)
