"""Verbs on a yard on S3 (moto's server on 127.0.0.1) from more than one "machine".

A machine is a ``$TUNEYARD_YARD_CACHE`` folder (its working copies and its cache of
fetched artifacts); the bucket is all the machines share.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import s3fs
from test_object_storage import machine, remote_files, subprocess_env
from topic_data import write_topic_csvs

PROMPT = "Classify row={{ id }}: {{ text }}. Answer alpha, beta or gamma."  # the fault server reads row=N
ROWS = 120


def write_rows(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True)
    lines = [json.dumps({"id": i, "text": f"item number {i}", "label": "alpha"}) for i in range(count)]
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def shared_journal(yard_url: str) -> list[int]:
    """The rows of the label job's journal as the bucket holds it (empty: none there yet)."""
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    found = fs.glob(f"{yard_url.removeprefix('s3://')}/.tuneyard/shared/label-jobs/*/journal.jsonl")
    if not found:
        return []
    lines = fs.cat_file(found[0]).decode().splitlines()
    return [json.loads(line)["row"] for line in lines if line.endswith("}")]


def test_a_label_job_killed_on_machine_a_is_finished_on_machine_b_with_every_row_once(
    cli: Callable[..., object],
    fault_server: Callable[..., object],
    s3_yard: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = write_rows(tmp_path / "rows", ROWS)
    server = fault_server(delay=0.05)
    command = [
        "--yard", s3_yard, "label", "--data", str(data),
        "--teacher", "fault-teacher", "--base-url", server.url, "--prompt", PROMPT,
        "--choices", "alpha,beta,gamma", "--no-api-key", "--concurrency", "2", "-q",
    ]  # fmt: skip
    on_a = subprocess.Popen(  # a process of its own, to be SIGKILLed
        [sys.executable, "-m", "tuneyard", *command],
        env=subprocess_env(tmp_path / "machine-a"),
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while len(shared_journal(s3_yard)) < 30 and time.monotonic() < deadline and on_a.poll() is None:
        time.sleep(0.1)
    on_a.send_signal(signal.SIGKILL)
    on_a.communicate(timeout=60)
    sent = shared_journal(s3_yard)
    asked_on_a = len(server.requests())
    assert 30 <= len(sent) < ROWS, "the kill must land in the middle, after the journal reached the bucket"
    assert not any(name.startswith("datasets/") for name in remote_files(s3_yard))

    machine(monkeypatch, tmp_path / "machine-b")
    on_b = cli(*command, "--resume")
    assert on_b.exit_code == 0, on_b.stderr
    asked_on_b = Counter(request["row"] for request in server.requests()[asked_on_a:])
    assert not set(sent) & set(asked_on_b), "a row the bucket's journal holds was asked again"
    assert set(asked_on_b) | set(sent) == set(range(ROWS))

    from datasets import Dataset

    dataset = Path(on_b.stdout.strip())
    assert dataset.is_relative_to(tmp_path / "machine-b")
    rows = Dataset.from_parquet(str(dataset / "train.parquet"))["id"]
    assert sorted(rows) == list(range(ROWS))  # every row once
    listed = remote_files(s3_yard)
    assert any(name.endswith("train.parquet") for name in listed)
    assert not any("label-jobs" in name for name in listed)  # finished: the shared journal is gone


QUICK_EVAL = ("--batch-size", "8", "-q")


def evaluated_on_a(
    cli: Callable[..., object], s3_yard: str, model: Path, data: Path, ranks: list[str]
) -> list[str]:
    """Compressed models of ``model`` in the S3 yard, each evaluated on machine A: their yard paths."""
    for rank in ranks:
        compressed = cli("--yard", s3_yard, "compress", "--checkpoint", model, "--rank", rank, "-q")
        assert compressed.exit_code == 0, compressed.stderr
        folder = compressed.stdout.strip().splitlines()[-1].removeprefix("saved ")
        evaluated = cli("--yard", s3_yard, "eval", "--checkpoint", folder, "--data", data, *QUICK_EVAL)
        assert evaluated.exit_code == 0, evaluated.stderr
    listed = cli("--yard", s3_yard, "runs", "ls", "--format", "json")
    return sorted(row["path"] for row in json.loads(listed.stdout))


def topics(tmp_path: Path) -> Path:
    return write_topic_csvs(tmp_path / "topics", ("sports", "cooking"), {"train": 8, "validation": 8})


def test_a_report_on_machine_b_draws_the_metrics_of_evals_made_on_machine_a(
    cli: Callable[..., object],
    s3_yard: str,
    tiny_model: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paths = evaluated_on_a(cli, s3_yard, tiny_model("bert"), topics(tmp_path), ["4", "2"])
    folder = os.path.commonpath(paths)  # the folder holding both models, as `runs ls` prints paths

    machine(monkeypatch, tmp_path / "machine-b")
    report = cli("--yard", s3_yard, "report", folder)

    assert report.exit_code == 0, report.stderr
    plots = [Path(line) for line in report.stdout.splitlines()]
    assert [plot.name for plot in plots] == ["comparison_topics.accuracy.png"]  # A's eval metric
    assert plots[0].is_relative_to(tmp_path / "machine-b") and plots[0].stat().st_size > 1000
    assert f"{folder}/report/comparison_topics.accuracy.png" in remote_files(s3_yard)
    # a chart of metrics reads manifests, not weights: B downloaded none
    assert not list((tmp_path / "machine-b").rglob("*.safetensors"))


def test_eval_of_an_s3_checkpoint_from_a_machine_without_the_yard_downloads_it_once(
    cli: Callable[..., object],
    s3_yard: str,
    tiny_model: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = topics(tmp_path)
    paths = evaluated_on_a(cli, s3_yard, tiny_model("bert"), data, ["4"])
    url = f"{s3_yard}/{paths[0]}"
    machine(monkeypatch, tmp_path / "machine-c")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # no yard here, and the cache is outside this folder

    def evaluate(output: str) -> dict[str, float]:
        result = cli(
            "eval", "--checkpoint", url, "--data", data, "--output-dir", tmp_path / output, *QUICK_EVAL
        )
        assert result.exit_code == 0, result.stderr
        return json.loads(next((tmp_path / output).rglob("metrics.json")).read_text())["metrics"]

    first = evaluate("first")
    cached = sorted((tmp_path / "machine-c" / "artifacts").rglob("*"))
    stamps = {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in cached if path.is_file()}
    second = evaluate("second")

    assert first == pytest.approx(second)
    assert sorted((tmp_path / "machine-c" / "artifacts").rglob("*")) == cached  # one copy, reused
    assert {path: (path.stat().st_ino, path.stat().st_mtime_ns) for path in stamps} == stamps
    assert any(path.name == "model.safetensors" for path in stamps)

    import tuneyard

    assert tuneyard.load(url).config.architectures == ["BertForSequenceClassification"]
    machine(monkeypatch, tmp_path / "machine-a")
    released = cli("--yard", s3_yard, "release", paths[0], "--name", "topics", "--notes", "First")
    assert released.exit_code == 0, released.stderr
    machine(monkeypatch, tmp_path / "machine-d")  # a release made on A, loaded by name on D
    loaded = tuneyard.load("release:topics", yard=s3_yard)
    assert loaded.config.architectures == ["BertForSequenceClassification"]


def test_a_missing_s3_checkpoint_is_a_user_error_naming_the_url(
    cli: Callable[..., object], s3_yard: str, tmp_path: Path
) -> None:
    url = f"{s3_yard}/compressed_models/nothing-here"
    result = cli(
        "eval", "--checkpoint", url, "--data", topics(tmp_path), "--output-dir", tmp_path / "out", "-q"
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: no artifact at {url}: the store holds no object under that key.")
    assert not (tmp_path / "out").exists()


def test_merge_and_eval_on_machine_b_of_a_lora_runs_best_file_their_results_against_the_run(
    cli: Callable[..., object],
    s3_yard: str,
    tiny_model: Callable[..., Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = topics(tmp_path)
    trained = cli(
        "--yard", s3_yard, "finetune", "--checkpoint", tiny_model("bert"), "--data", data,
        "--strategy", "lora", "--epochs", "1", "--batch-size", "8", "--project", "p", "--name", "adapted",
        "-q",
    )  # fmt: skip
    assert trained.exit_code == 0, trained.stderr
    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    run = f"{s3_yard.removeprefix('s3://')}/outputs/p/topics/adapted"
    trained_id = json.loads(fs.cat_file(f"{run}/manifest.json"))["id"]

    machine(monkeypatch, tmp_path / "machine-b")  # only best/ is fetched: the run's manifest stays in S3
    merged = cli("--yard", s3_yard, "merge", "--checkpoint", "outputs/p/topics/adapted/best")
    evaluated = cli(
        "--yard", s3_yard, "eval", "--checkpoint", "outputs/p/topics/adapted/best", "--data", data,
        "--split", "train", *QUICK_EVAL,
    )  # fmt: skip

    assert merged.exit_code == 0, merged.stderr
    saved = Path(merged.stdout.strip().splitlines()[-1].removeprefix("saved "))
    assert saved.is_relative_to(tmp_path / "machine-b")
    (filed,) = fs.glob(f"{s3_yard.removeprefix('s3://')}/models/merged/*/*/manifest.json")
    record = json.loads(fs.cat_file(filed))
    assert record["parents"][0] == {"id": trained_id, "path": "outputs/p/topics/adapted", "role": "adapter"}
    assert (record["task"], record["status"]) == ("topics", "complete")
    assert evaluated.exit_code == 0, evaluated.stderr
    fs.invalidate_cache()
    assert (
        "topics_train" in json.loads(fs.cat_file(f"{run}/manifest.json"))["metrics"]
    )  # the run's, not best/'s
    assert not list((tmp_path / "machine-b").rglob("checkpoint-*"))  # a model's files, not the run's state
