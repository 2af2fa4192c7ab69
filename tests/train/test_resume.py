"""Runs killed with SIGKILL resume to the same result; Ctrl-C stops cleanly after a checkpoint.

The interrupted runs are real ``python -m tuneyard finetune`` processes, signalled
while they train.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
import signal
import time
from pathlib import Path

import pytest

from tuneyard.train.checkpoints import checkpoint_step, list_checkpoints
from tuneyard.yard.manifest import update_manifest

# 64 rows / batch 4 = 16 steps per epoch; 6 epochs; evaluate + checkpoint every 8 steps.
TRAINING = (
    "--strategy",
    "full",
    "--epochs",
    "6",
    "--batch-size",
    "4",
    "--save-steps",
    "8",
    "--keep",
    "2",
    "--learning-rate",
    "5e-3",
    "--project",
    "p",
    "--quiet",
)
TOTAL_STEPS = 96


def read_log(run: Path) -> list[dict[str, str]]:
    with open(run / "training_log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def wait_for_checkpoint(run: Path, process, min_step: int, timeout: float = 120.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(checkpoint_step(path) >= min_step for path in list_checkpoints(run)):
            return
        if process.poll() is not None:
            raise AssertionError(f"training ended before step {min_step}: {process.communicate()[1][-2000:]}")
        time.sleep(0.01)
    process.kill()
    raise AssertionError(f"no checkpoint at step >= {min_step} within {timeout} s")


def assert_resumed_like(reference: Path, run: Path, subfolders: tuple[str, ...]) -> None:
    """The resumed run logged the reference's rows (none missing, none twice) and scores, within 1e-4."""
    expected, got = read_log(reference), read_log(run)
    assert [row["step"] for row in got] == [row["step"] for row in expected]
    for want, have in zip(expected, got):
        for column in ("train_loss", "val_loss", "accuracy", "f1_macro"):
            assert float(have[column]) == pytest.approx(float(want[column]), abs=1e-4), (column, want["step"])
    for subfolder in subfolders:
        wanted = json.loads((reference / subfolder / "manifest.json").read_text())["metrics"]["topics"]
        scores = json.loads((run / subfolder / "manifest.json").read_text())["metrics"]["topics"]
        for name, value in wanted.items():
            assert scores[name] == pytest.approx(value, abs=1e-4), (subfolder, name)


def status(run: Path) -> str:
    return json.loads((run / "manifest.json").read_text())["status"]


@pytest.fixture(scope="module")
def reference_run(tiny_model, topics, tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    """The uninterrupted run every killed run must resume to."""
    from tuneyard.cli import main

    root = tmp_path_factory.mktemp("reference")
    try:
        main(
            [
                "--yard",
                str(root),
                "finetune",
                "--checkpoint",
                str(tiny_model("bert")),
                "--data",
                str(topics),
                *TRAINING,
                "--name",
                "reference",
            ]
        )
    except SystemExit as exc:
        assert not exc.code
    return root / "outputs" / "p" / "topics" / "reference"


def test_sigkilled_run_resumes_to_the_uninterrupted_result(
    cli, tuneyard_process, reference_run, tiny_model, topics, tmp_path
) -> None:
    common = ("--yard", tmp_path, "finetune", "--checkpoint", tiny_model("bert"), "--data", topics, *TRAINING)
    killed_run = tmp_path / "outputs" / "p" / "topics" / "killed"
    process = tuneyard_process(*common, "--name", "killed")
    wait_for_checkpoint(killed_run, process, min_step=24)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert status(killed_run) == "running"
    steps_before = [int(row["step"]) for row in read_log(killed_run)]
    assert steps_before[-1] < TOTAL_STEPS, "the kill came after training had finished"

    resumed = cli("--yard", tmp_path, "finetune", "--resume", killed_run)
    assert resumed.exit_code == 0, resumed.stderr
    assert "resuming" in resumed.stderr and "from checkpoint-" in resumed.stderr
    assert status(killed_run) == "complete"

    assert_resumed_like(reference_run, killed_run, subfolders=("best",))


def test_sigint_saves_a_checkpoint_stops_and_can_be_resumed(
    cli, tuneyard_process, tiny_model, topics, tmp_path
) -> None:
    run = tmp_path / "outputs" / "p" / "topics" / "stopped"
    flags = (
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        tiny_model("bert"),
        "--data",
        topics,
        *TRAINING,
        "--name",
        "stopped",
    )
    process = tuneyard_process(*flags)
    wait_for_checkpoint(run, process, min_step=8)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    stopped_at = int(stderr.split("stopped at step ")[1].split()[0])
    assert stopped_at < TOTAL_STEPS
    assert f"resume with: tuneyard finetune --resume {run}" in stderr
    assert checkpoint_step(list_checkpoints(run)[-1]) == stopped_at
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "failed" and manifest["stop_reason"] == f"interrupted at step {stopped_at}"
    assert not (run / "last").exists()

    resumed = cli(*flags, "--resume")  # the same flags find the same run
    assert resumed.exit_code == 0, resumed.stderr
    assert f"resuming {run} from checkpoint-" in resumed.stderr
    steps = [int(row["step"]) for row in read_log(run)]
    assert steps == sorted(set(steps)) and steps[-1] == TOTAL_STEPS
    assert status(run) == "complete" and (run / "last" / "model.safetensors").is_file()


# (what the process was doing when killed, the path tail it was writing, how, which occurrence)
KILL_WINDOWS = [
    # the Trainer staging checkpoint-16: its weights written, its tokenizer and state not yet
    ("staging a checkpoint", "checkpoint-16/tokenizer_config.json", "open", 1),
    # step 16's log row appended, its manifest update and checkpoint not yet
    ("between a log row and its checkpoint", "killed/manifest.json", "publish", 3),
    # the second replacement of best/: the old one moved aside, the new one not yet in
    ("promoting best/", "killed/best", "publish", 3),
    # the final manifest (status complete): 1 at the start + 12 evaluations + this one
    ("writing the final manifest", "killed/manifest.json", "publish", 14),
]


@pytest.mark.parametrize(("window", "tail", "event", "nth"), KILL_WINDOWS, ids=[w[0] for w in KILL_WINDOWS])
def test_a_run_killed_in_any_window_resumes_to_the_uninterrupted_result(
    window: str,
    tail: str,
    event: str,
    nth: int,
    reference_run: Path,
    cli,
    run_killed_at,
    tiny_model,
    topics,
    tmp_path,
) -> None:
    flags = (
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        tiny_model("bert"),
        "--data",
        topics,
        *TRAINING,
        "--name",
        "killed",
    )
    run = tmp_path / "outputs" / "p" / "topics" / "killed"
    killed = run_killed_at(tail, *flags, event=event, nth=nth)
    assert killed.returncode == 9, f"not killed while {window}: {killed.stderr[-2000:]}"
    assert status(run) == "running"
    if window == "promoting best/":
        assert not (run / "best").exists() and list(run.glob(".tmp-old-best-*"))

    resumed = cli("--yard", tmp_path, "finetune", "--resume", run)
    assert resumed.exit_code == 0, resumed.stderr
    assert status(run) == "complete"
    assert_resumed_like(reference_run, run, subfolders=("best", "last"))
    assert not [path.name for path in run.iterdir() if path.name.startswith(".tmp-")]


class RunsCode:
    """Unpickled by full pickle, this object runs a shell command (what a malicious checkpoint does)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_resume_loads_the_trainers_pickled_state_with_torchs_restricted_unpickler(
    cli, tiny_model, topics, tmp_path
) -> None:
    done = cli("--yard", tmp_path, "finetune", "--checkpoint", tiny_model("bert"), "--data", topics,
               "--epochs", "1", "--batch-size", "8", "--quiet")  # fmt: skip
    assert done.exit_code == 0, done.stderr
    run = Path(done.stdout.strip())
    update_manifest(run, lambda manifest: setattr(manifest, "status", "failed"))  # as a crash leaves it
    planted = list_checkpoints(run)[-1] / "optimizer.pt"
    with planted.open("wb") as handle:
        pickle.dump(RunsCode(tmp_path / "ran-by-resume"), handle)

    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        cli("--yard", tmp_path, "finetune", "--resume", run)
    assert not (tmp_path / "ran-by-resume").exists()

    pickle.loads(planted.read_bytes())  # what a full unpickler would have done with it
    assert (tmp_path / "ran-by-resume").exists()
