"""``grid`` and ``pipeline`` on a yard in S3 (moto's server on 127.0.0.1): begun on one machine,
finished on another.

Each machine is a ``$TUNEYARD_YARD_CACHE`` folder (its working copy of the yard); the bucket
is all they share, so what machine B sees of machine A's work it read from the bucket.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import s3fs
import yaml
from topic_data import write_topic_csvs

EXPERIMENT = "study"
ROWS = {"train": 16, "validation": 8, "test": 8}  # batch 8: 2 steps an epoch


def bucket_text(url: str, relative: str) -> str:
    """The object at ``relative`` under the yard ``url``, read from the bucket itself."""
    return (
        s3fs.S3FileSystem(skip_instance_cache=True)
        .cat_file(f"{url.removeprefix('s3://')}/{relative}")
        .decode()
    )


def bucket_manifests(url: str, folder: str) -> dict[str, dict]:
    """The manifest of each artifact folder directly in ``folder``, by folder name, from the bucket."""
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    root = f"{url.removeprefix('s3://')}/{folder}"
    found = fs.glob(f"{root}/*/manifest.json")
    return {Path(name).parent.name: json.loads(fs.cat_file(name)) for name in found}


def machine(monkeypatch: pytest.MonkeyPatch, cache: Path) -> None:
    """Play another machine from now on: its own working copy and index."""
    monkeypatch.setenv("TUNEYARD_YARD_CACHE", str(cache))


def write_grid(tmp_path: Path, model: Path) -> Path:
    """Two LoRA cells of 4 steps each (16 rows, batch 8, 2 epochs), evaluated on the test split."""
    data = write_topic_csvs(tmp_path / "topics", ("sports", "cooking"), ROWS)
    spec = {
        "experiment": EXPERIMENT,
        "finetuning": {
            "models": [str(model)], "data": str(data), "strategies": ["lora"], "lora_ranks": [4, 8],
            "epochs": 2, "batch_size": 8, "learning_rate": 1e-3,
            "options": {"max_length": 32, "save_steps": 1},
        },
        "evals": {"tasks": [str(data)], "split": "test"},
    }  # fmt: skip
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_grid_killed_on_machine_a_is_finished_on_machine_b_skipping_the_finished_cell(
    cli: Callable[..., object],
    run_killed_at: Callable[..., subprocess.CompletedProcess[str]],
    s3_yard: str,
    tiny_model: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spec = write_grid(tmp_path, tiny_model("bert"))
    # Each cell logs 4 evaluation rows; the 6th row written is the second cell's 2nd: it has a checkpoint.
    killed = run_killed_at("training_log.csv", "--yard", s3_yard, "grid", spec, event="open", nth=6)
    assert killed.returncode == 9, killed.stderr[-2000:]
    runs = f"experiments/{EXPERIMENT}/finetuned_checkpoints"
    before = bucket_manifests(s3_yard, runs)
    assert sorted(manifest["status"] for manifest in before.values()) == ["complete", "running"], before
    (finished,) = [name for name, manifest in before.items() if manifest["status"] == "complete"]

    machine(monkeypatch, tmp_path / "machine-b")
    resumed = cli("--yard", s3_yard, "grid", spec)
    assert resumed.exit_code == 0, resumed.stderr
    assert "ran 1 cell(s) of 2" in resumed.stderr  # the cell machine A finished is skipped
    after = bucket_manifests(s3_yard, runs)
    assert after[finished]["training"] == before[finished]["training"]  # ... and not trained again
    assert {manifest["status"] for manifest in after.values()} == {"complete"}
    for manifest in after.values():  # each cell's test score is its run's, not the experiment folder's
        assert "topics_test" in manifest["metrics"], manifest["metrics"]

    rows = list(csv.DictReader(io.StringIO(bucket_text(s3_yard, f"experiments/{EXPERIMENT}/metrics.csv"))))
    assert sorted(Path(row["run"]).name for row in rows) == sorted(after)  # every cell, from both machines
    assert {row["state"] for row in rows} == {"complete"}
    assert all(0 <= float(row["topics"]) <= 1 for row in rows)  # each scored by the eval grid
    graded = json.loads(bucket_text(s3_yard, f"experiments/{EXPERIMENT}/grader_logs.json"))
    assert len(graded) == 2
    for entry in graded:  # each names an evaluation folder that is in the bucket
        assert json.loads(bucket_text(s3_yard, f"{entry['results']}/metrics.json"))
    (interrupted,) = [name for name in after if name != finished]
    log = bucket_text(s3_yard, f"experiments/{EXPERIMENT}/finetune_logs/{interrupted}.log")
    assert "starting on" in log and "resuming on" in log  # one story across two machines
    assert "complete after" in log


def write_pipeline(tmp_path: Path, model: Path, split: str = "test") -> Path:
    topics = write_topic_csvs(tmp_path / "topics", ("sports", "cooking"), ROWS)
    steps = [
        {"name": "data", "prepare": {"source": str(topics), "name": "topics"}},
        {"name": "tuned", "finetune": {
            "checkpoint": str(model), "data": "${data}", "epochs": 1, "batch_size": 8, "max_length": 32,
        }},
        {"name": "scores", "eval": {"checkpoint": "${tuned}", "data": "${data}", "split": split}},
    ]  # fmt: skip
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"experiment": "chain", "steps": steps}))
    return path


def test_a_pipeline_run_on_machine_a_is_done_on_machine_b_and_a_changed_step_runs_there(
    cli: Callable[..., object],
    s3_yard: str,
    tiny_model: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    model = tiny_model("bert")
    first = cli("--yard", s3_yard, "pipeline", write_pipeline(tmp_path, model))
    assert first.exit_code == 0, first.stderr
    state = json.loads(bucket_text(s3_yard, "experiments/chain/pipeline.json"))["steps"]
    assert all(not Path(entry["path"]).is_absolute() for entry in state.values())  # the same on every machine

    machine(monkeypatch, tmp_path / "machine-b")
    again = cli("--yard", s3_yard, "pipeline", write_pipeline(tmp_path, model))
    assert again.exit_code == 0, again.stderr
    assert again.stderr.count("done earlier, skipped") == 3, again.stderr
    status = cli("--yard", s3_yard, "pipeline", "status", "chain")
    assert status.exit_code == 0 and status.stdout.count("complete") == 3, status.stdout + status.stderr

    # A changed last step runs on machine B, on the model and data machine A filed.
    changed = cli("--yard", s3_yard, "pipeline", write_pipeline(tmp_path, model, split="validation"))
    assert changed.exit_code == 0, changed.stderr
    assert changed.stderr.count("done earlier, skipped") == 2 and "scores (eval): done" in changed.stderr
    bucket = s3fs.S3FileSystem(skip_instance_cache=True)
    kept = bucket.find(f"{s3_yard.removeprefix('s3://')}/{state['tuned']['path']}")
    assert any("/checkpoint-" in name for name in kept)  # the run keeps its checkpoints in the bucket ...
    assert not list((tmp_path / "machine-b").rglob("checkpoint-*"))  # ... which the eval step did not fetch
    run = json.loads(bucket_text(s3_yard, f"{state['tuned']['path']}/manifest.json"))
    data = Path(state["data"]["path"]).name  # eval keys its scores by the data's name
    assert {data, f"{data}_test"} <= set(run["metrics"]), run["metrics"]  # B's score and A's, one manifest


def test_an_eval_grid_rerun_on_machine_b_with_every_cell_done_fetches_no_weights(
    cli: Callable[..., object],
    s3_yard: str,
    tiny_model: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = write_topic_csvs(tmp_path / "topics", ("sports", "cooking"), {"train": 8, "validation": 8})
    compressed = cli("--yard", s3_yard, "compress", "--checkpoint", tiny_model("bert"), "--rank", "4", "-q")
    assert compressed.exit_code == 0, compressed.stderr
    listed = json.loads(cli("--yard", s3_yard, "runs", "ls", "--format", "json").stdout)
    model = listed[0]["path"]
    grid = ("--yard", s3_yard, "eval-grid", "--models", model, "--tasks", data, "--experiment", "g")
    first = cli(*grid)
    assert first.exit_code == 0 and "computed 1 cell(s)" in first.stderr, first.stderr

    machine(monkeypatch, tmp_path / "machine-b")
    again = cli(*grid)

    assert again.exit_code == 0, again.stderr
    assert "done earlier, skipped" in again.stderr and "computed 0 cell(s)" in again.stderr
    assert again.stdout == first.stdout  # the same table of scores
    assert list((tmp_path / "machine-b").rglob("config.json"))  # what names the model was read ...
    assert not list((tmp_path / "machine-b").rglob("*.safetensors"))  # ... and no weights


def test_a_background_pipeline_sends_its_log_to_the_bucket(
    cli: Callable[..., object], s3_yard: str, tmp_path: Path
) -> None:
    topics = write_topic_csvs(tmp_path / "topics", ("sports", "cooking"), ROWS)
    path = tmp_path / "pipeline.yaml"
    steps = [{"name": "data", "prepare": {"source": str(topics), "name": "topics"}}]
    path.write_text(yaml.safe_dump({"experiment": "detached", "steps": steps}))

    started = cli("--yard", s3_yard, "pipeline", path, "--background")

    assert started.exit_code == 0, started.stderr
    log = Path(started.stdout.strip())
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    in_bucket = f"{s3_yard.removeprefix('s3://')}/experiments/detached/logs/{log.name}"
    text, deadline = "", time.monotonic() + 120
    while "data (prepare): done" not in text and time.monotonic() < deadline:
        time.sleep(0.5)
        fs.invalidate_cache()
        text = fs.cat_file(in_bucket).decode() if fs.exists(in_bucket) else ""
    assert "data (prepare): running" in text and "data (prepare): done" in text, log.read_text()


def test_a_background_pipeline_that_fails_sends_its_error_and_state_to_the_bucket(
    cli: Callable[..., object], s3_yard: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "pipeline.yaml"
    steps = [{"name": "data", "prepare": {"source": str(tmp_path / "no-such-data"), "name": "topics"}}]
    path.write_text(yaml.safe_dump({"experiment": "broken", "steps": steps}))

    started = cli("--yard", s3_yard, "pipeline", path, "--background")

    assert started.exit_code == 0, started.stderr
    log = Path(started.stdout.strip())
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    in_bucket = f"{s3_yard.removeprefix('s3://')}/experiments/broken/logs/{log.name}"
    text, deadline = "", time.monotonic() + 60
    while "error:" not in text and time.monotonic() < deadline:
        time.sleep(0.5)
        fs.invalidate_cache()
        text = fs.cat_file(in_bucket).decode() if fs.exists(in_bucket) else ""
    assert "data (prepare): running" in text and "error:" in text, (text, log.read_text())
    assert "no-such-data" in text.split("error:", 1)[1]  # the message, not just the word

    machine(monkeypatch, tmp_path / "machine-b")  # what another machine sees of it
    status = cli("--yard", s3_yard, "pipeline", "status", "broken")
    assert status.exit_code == 0, status.stderr
    assert "failed" in status.stdout and "no-such-data" in status.stdout, status.stdout
