"""``tuneyard grid``: each cell runs once, resumes after a kill, and reruns only where the file changed."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml
from topic_data import write_topic_csvs

EXPERIMENT = "study"


def write_experiment(tmp_path: Path, models: list[Path], **finetuning: object) -> Path:
    data = write_topic_csvs(
        tmp_path / "topics", ("sports", "cooking"), {"train": 48, "validation": 16, "test": 16}
    )
    spec = {
        "experiment": EXPERIMENT,
        "finetuning": {
            "models": [str(model) for model in models],
            "data": str(data),
            "strategies": ["full", "lora"],
            "lora_ranks": [4, 8],
            "epochs": 1,
            "batch_size": 8,
            "learning_rate": 1e-3,
            "options": {"max_length": 32},
            **finetuning,
        },  # fmt: skip
        "evals": {"tasks": [str(data)], "split": "test"},
    }
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def dry_run(cli, yard: Path, spec: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    result = cli("--yard", yard, "grid", spec, "--dry-run")
    assert result.exit_code == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if re.match(r"[0-9a-f]{10} ", line)]
    return {row[1]: row[2] for row in rows}


def metrics_table(yard: Path) -> dict[str, dict[str, str]]:
    """The experiment's metrics.csv, a row per cell id."""
    with open(yard / "experiments" / EXPERIMENT / "metrics.csv") as handle:
        return {row["cell"]: row for row in csv.DictReader(handle)}


def test_a_grid_runs_each_cell_once_evaluates_them_and_reruns_only_what_changed(
    cli, tiny_model, tmp_path
) -> None:
    models = [tiny_model("bert"), tiny_model("roberta")]
    spec = write_experiment(tmp_path, models)
    yard = tmp_path / "yard"
    planned = dry_run(cli, yard, spec)
    assert len(planned) == 6 and set(planned.values()) == {"new"}  # 2 models x (full + lora r4, r8)

    first = cli("--yard", yard, "grid", spec)
    assert first.exit_code == 0, first.stderr
    assert "ran 6 cell(s) of 6" in first.stderr
    folder = yard / "experiments" / EXPERIMENT
    with open(folder / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6 and {row["state"] for row in rows} == {"complete"}
    assert {row["strategy"] for row in rows} == {"full", "lora"}
    scores = [float(row["topics"]) for row in rows]
    assert all(0 <= score <= 1 for score in scores)
    results = json.loads((folder / "eval_grid_results.json").read_text())
    assert len(results["cells"]) == 6 and (folder / "eval_grid_heatmap.png").is_file()
    runs = sorted(path.name for path in (folder / "finetuned_checkpoints").iterdir())
    assert len(runs) == 6 and all((folder / "finetuned_checkpoints" / run / "best").is_dir() for run in runs)
    logs = sorted((folder / "finetune_logs").iterdir())
    assert [log.stem for log in logs] == runs  # one log per cell, named like its run
    assert "options: " in logs[0].read_text() and "complete after" in logs[0].read_text()
    graded = json.loads((folder / "grader_logs.json").read_text())
    assert len(graded) == 6  # one per model x task, each naming its evaluation's folder in the yard
    assert all((yard / entry["results"] / "metrics.json").is_file() for entry in graded)
    assert len({(entry["model"], entry["task"]) for entry in graded}) == 6

    again = cli("--yard", yard, "grid", spec)
    assert again.exit_code == 0 and "ran 0 cell(s) of 6" in again.stderr  # complete cells are not re-run

    edited = write_experiment(tmp_path, models, lora_ranks=[4, 16])
    states = dry_run(cli, yard, edited)
    assert sorted(states.values()) == ["complete"] * 4 + ["new"] * 2
    assert {name for name, state in states.items() if state == "new"} == {
        "tiny-bert-l2-c2-lora-r16-s42", "tiny-roberta-l2-c2-lora-r16-s42"
    }  # fmt: skip


def test_exclude_rules_and_bad_fields(cli, tiny_model, tmp_path) -> None:
    bert, roberta = tiny_model("bert"), tiny_model("roberta")
    spec = write_experiment(tmp_path, [bert, roberta], exclude=[{"model": str(roberta), "strategy": "lora"}])
    assert len(dry_run(cli, tmp_path / "yard", spec)) == 4  # roberta's two lora cells left out
    document = yaml.safe_load(spec.read_text())
    document["finetuning"]["modelz"] = document["finetuning"].pop("models")
    spec.write_text(yaml.safe_dump(document))
    result = cli("--yard", tmp_path / "yard", "grid", spec, "--dry-run")
    assert result.exit_code == 2 and "unknown field 'finetuning.modelz'" in result.stderr
    assert "Allowed fields: batch_size, compressions, data, epochs, exclude" in " ".join(
        result.stderr.split()
    )


def test_a_grid_killed_mid_cell_resumes_that_cell_and_skips_the_finished_ones(
    run_killed_at, tiny_model, tmp_path
) -> None:
    # 6 steps an epoch, a checkpoint each: checkpoint-1-6, then checkpoint-2-12 as each cell ends.
    spec = write_experiment(
        tmp_path, [tiny_model("bert")], strategies=["lora"], lora_ranks=[4, 8], epochs=2,
        options={"max_length": 32, "save_steps": 6},
    )  # fmt: skip
    yard = tmp_path / "yard"

    def grid_command(yard: Path) -> list[str]:
        return [sys.executable, "-m", "tuneyard", "--yard", str(yard), "grid", str(spec)]

    checkpoints = yard / "experiments" / EXPERIMENT / "finetuned_checkpoints"
    # Killed (no cleanup, as by SIGKILL) as the second cell publishes its second checkpoint: the
    # first cell is complete, the second has checkpoint-1-6 behind it. No race with a timer.
    killed = run_killed_at("checkpoint-2-12", "--yard", yard, "grid", spec, nth=2)
    assert killed.returncode == 9, killed.stderr[-2000:]
    states = {
        run.name: json.loads((run / "manifest.json").read_text())["status"] for run in checkpoints.iterdir()
    }
    assert sorted(states.values()) == ["complete", "running"], states
    assert [path.name for path in next(checkpoints.glob("*-r8-*")).glob("checkpoint-*")] == ["checkpoint-1-6"]

    env = os.environ | {"TOKENIZERS_PARALLELISM": "false"}
    rerun = subprocess.run(grid_command(yard), capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "ran 1 cell(s) of 2" in rerun.stderr  # the finished cell is not re-run
    resumed = next(checkpoints.glob("*-r8-*"))
    manifest = json.loads((resumed / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    log = (resumed / "training_log.csv").read_text().splitlines()
    steps = [int(line.split(",")[1]) for line in log[1:] if line.split(",")[1].isdigit()]
    assert steps == sorted(steps) and len(steps) == len(set(steps))  # resumed, not restarted twice over

    calm = subprocess.run(grid_command(tmp_path / "calm"), capture_output=True, text=True, env=env)
    assert calm.returncode == 0, calm.stderr
    killed_table, uninterrupted = metrics_table(yard), metrics_table(tmp_path / "calm")
    assert killed_table.keys() == uninterrupted.keys() and len(killed_table) == 2  # the same cells...
    for cell, row in killed_table.items():  # ... and the same final scores as a grid never interrupted
        assert abs(float(row["topics"]) - float(uninterrupted[cell]["topics"])) <= 1e-4


def test_a_cell_that_fails_is_reported_and_the_grid_goes_on(cli, tiny_model, tmp_path) -> None:
    missing = tmp_path / "no-such-model"
    spec = write_experiment(tmp_path, [missing, tiny_model("bert")], strategies=["full"])
    result = cli("--yard", tmp_path / "yard", "grid", spec)
    assert result.exit_code == 1
    assert "[1/2] no-such-model-full-s42: failed: " in result.stderr
    with open(tmp_path / "yard" / "experiments" / EXPERIMENT / "metrics.csv") as handle:
        states = {row["name"]: row["state"] for row in csv.DictReader(handle)}
    assert states == {"no-such-model-full-s42": "failed", "tiny-bert-l2-c2-full-s42": "complete"}
    log = next((tmp_path / "yard" / "experiments" / EXPERIMENT / "finetune_logs").glob("no-such-model-*.log"))
    assert "ERROR tuneyard.grid.cell: failed after" in log.read_text()  # the reason, kept with the cell


def test_the_same_grid_in_two_processes_and_on_ray_gives_the_same_cells_and_metrics(
    cli, tiny_model, tmp_path, monkeypatch
) -> None:
    import socket

    spec = write_experiment(tmp_path, [tiny_model("bert")], strategies=["lora"])
    local = cli("--yard", tmp_path / "local", "grid", spec)
    assert local.exit_code == 0, local.stderr
    side_by_side = cli("--yard", tmp_path / "jobs-yard", "grid", spec, "--jobs", "2")
    assert side_by_side.exit_code == 0, side_by_side.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ray = Path(sys.executable).parent / "ray"
    # Ray keeps an auth token under ~/.ray once any local instance made one; the test's cluster
    # and its driver share a fresh home, so they agree whatever an earlier run left there.
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    short_temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    started = subprocess.run(
        [ray, "start", "--head", "--port", str(port), "--num-cpus", "2", "--num-gpus", "1",
         "--object-store-memory", "100000000",
         "--include-dashboard=false", "--disable-usage-stats", "--temp-dir", short_temp],
        capture_output=True, text=True, timeout=120, env=os.environ | {"HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    # The address the head says to join at: Ray swaps 127.0.0.1 for the node's own IP.
    address = re.search(r"--address='([^']+)'", started.stdout + started.stderr)
    assert address, started.stdout
    try:  # each cell asks for the cluster's one (logical) GPU: they run one after the other
        on_ray = cli("--yard", tmp_path / "ray-yard", "grid", spec, "--backend", "ray",
                     "--ray-address", address.group(1), "--gpus-per-cell", "1")  # fmt: skip
        unplaceable = cli("--yard", tmp_path / "other-yard", "grid", spec, "--backend", "ray",
                          "--ray-address", address.group(1), "--gpus-per-cell", "2")  # fmt: skip
    finally:
        subprocess.run([ray, "stop", "--force"], capture_output=True, timeout=120)
        shutil.rmtree(short_temp, ignore_errors=True)
    assert on_ray.exit_code == 0, on_ray.stderr
    assert unplaceable.exit_code == 2  # refused, not left waiting for a node that never comes
    assert "--gpus-per-cell 2: no node of the Ray cluster has that many GPUs" in " ".join(
        unplaceable.stderr.split()
    )
    tables = [metrics_table(tmp_path / yard) for yard in ("local", "jobs-yard", "ray-yard")]
    for other in tables[1:]:
        assert tables[0].keys() == other.keys() and len(tables[0]) == 2  # the same cell ids
        for cell, row in tables[0].items():
            assert abs(float(row["topics"]) - float(other[cell]["topics"])) <= 1e-4
            assert other[cell]["state"] == "complete"
    for yard in ("jobs-yard", "ray-yard"):
        listed = cli("--yard", tmp_path / yard, "runs", "ls", "--kind", "run", "--format", "json")
        assert len(json.loads(listed.stdout)) == 2  # the driver indexed what the workers trained


def test_compressed_starts_are_an_axis_compressed_once_each(cli, tiny_model, tmp_path) -> None:
    spec = write_experiment(
        tmp_path, [tiny_model("bert")], strategies=["full", "lora", "lowrank"], lora_ranks=[4],
        compressions=[None, {"method": "standard", "ratio": 0.5, "calib_samples": 16}],
        exclude=[{"compression": None, "strategy": "full"}],
    )  # fmt: skip
    yard = tmp_path / "yard"
    names = {
        f"tiny-bert-l2-c2-{axes}-s42" for axes in ("lora-r4", "standard-0.5-full", "standard-0.5-lowrank")
    }
    assert set(dry_run(cli, yard, spec)) == names  # lora on dense only, lowrank on compressed only
    assert "start standard-0.5 of " in cli("--yard", yard, "grid", spec, "--dry-run").stdout
    result = cli("--yard", yard, "grid", spec)
    assert result.exit_code == 0, result.stderr
    folder = yard / "experiments" / EXPERIMENT
    starts = list((folder / "compressed").iterdir())
    assert len(starts) == 1 and "compressed start standard-0.5" in result.stderr  # one start, two cells on it
    start = json.loads((starts[0] / "manifest.json").read_text())
    assert start["kind"] == "compressed" and start["method"] == "standard"
    rows = metrics_table(yard)
    assert sorted(str(row["compression"]) for row in rows.values()) == ["", "standard-0.5", "standard-0.5"]
    for row in rows.values():
        run = json.loads((yard / row["run"] / "manifest.json").read_text())
        from_start = any(starts[0].name in str(parent.get("path")) for parent in run["parents"])
        assert from_start == bool(row["compression"])  # the compressed cells fine-tuned from the start
        assert row["state"] == "complete" and 0 <= float(row["topics"]) <= 1
    again = cli("--yard", yard, "grid", spec)
    assert again.exit_code == 0 and "ran 0 cell(s) of 3" in again.stderr
    assert "compressed start" not in again.stderr  # the start is not compressed twice

    nothing = write_experiment(tmp_path, [tiny_model("bert")], strategies=["lowrank"])  # fits no plain start
    empty = cli("--yard", yard, "grid", nothing, "--dry-run")
    assert empty.exit_code == 2 and "every cell is left out" in empty.stderr

    bad = write_experiment(
        tmp_path, [tiny_model("bert")], compressions=[{"method": "standard", "model": "x"}]
    )
    refused = cli("--yard", yard, "grid", bad, "--dry-run")
    assert refused.exit_code == 2 and "sets 'model', which the grid decides" in refused.stderr


def test_cells_that_differ_only_by_seed_get_their_mean_and_spread(cli, tiny_model, tmp_path) -> None:
    import statistics

    spec = write_experiment(tmp_path, [tiny_model("bert")], strategies=["full"], seeds=[1, 2, 3])
    yard = tmp_path / "yard"
    result = cli("--yard", yard, "grid", spec)
    assert result.exit_code == 0, result.stderr
    path = yard / "experiments" / EXPERIMENT / "seeds.csv"
    assert f"mean and spread over seeds: {path}" in result.stderr
    scores = [float(row["topics"]) for row in metrics_table(yard).values()]
    with open(path) as handle:
        [row] = list(csv.DictReader(handle))
    assert (row["strategy"], row["eval_task"], row["seeds"], row["lora_rank"], row["task"]) == (
        "full", "topics", "3", "", ""
    )  # fmt: skip
    assert float(row["mean"]) == pytest.approx(statistics.fmean(scores), abs=1e-6)
    assert float(row["sd"]) == pytest.approx(statistics.stdev(scores), abs=1e-6)
    assert (float(row["min"]), float(row["max"])) == (pytest.approx(min(scores)), pytest.approx(max(scores)))
