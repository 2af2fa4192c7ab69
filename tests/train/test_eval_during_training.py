"""``tuneyard eval`` of a run's best/ while the run still trains: the eval's metrics survive.

Two real processes: a fine-tuning run, and an eval of its ``best/`` made while the run
is paused (SIGSTOP) with many evaluations still to go. Every later manifest write of
the run (after each evaluation, and the final one) must keep the eval's metrics key
and the files it listed.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

# 64 rows / batch 8 = 8 steps per epoch; 4 epochs; evaluate (and maybe write best/) every 2 steps.
TRAINING = (
    "--strategy",
    "full",
    "--epochs",
    "4",
    "--batch-size",
    "8",
    "--save-steps",
    "2",
    "--learning-rate",
    "5e-3",
    "--project",
    "p",
    "--quiet",
)


def manifest(run: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((run / "manifest.json").read_text())


def wait_for_best(root: Path, process: subprocess.Popen[str], timeout: float = 120.0) -> Path:
    """The run folder, once its first best/ and first evaluation are filed."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for best in root.glob("outputs/p/*/*/best"):
            run = best.parent
            if (manifest(run).get("training") or {}).get("step"):
                return run
        if process.poll() is not None:
            raise AssertionError(f"training ended early: {process.communicate()[1][-2000:]}")
        time.sleep(0.02)
    raise AssertionError("no best/ within the timeout")


def holds_a_yard_lock(root: Path, run: Path) -> bool:
    """Whether a (paused) writer holds the index's write lock or a run folder's lock."""
    index = sqlite3.connect(root / ".tuneyard" / "index.db", timeout=0, isolation_level=None)
    try:
        index.execute("BEGIN IMMEDIATE")
        index.execute("ROLLBACK")
    except sqlite3.OperationalError:
        return True
    finally:
        index.close()
    for folder in (run, run / "best"):
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(descriptor)
    return False


def pause_between_writes(process: subprocess.Popen[str], root: Path, run: Path) -> None:
    """SIGSTOP the run at a moment it is not in the middle of filing something.

    A writer stopped inside its index transaction or a folder lock would make any other
    writer wait forever; the user's case is an eval made between the run's writes.
    """
    for _ in range(1000):
        os.kill(process.pid, signal.SIGSTOP)
        if not holds_a_yard_lock(root, run):
            return
        os.kill(process.pid, signal.SIGCONT)
        time.sleep(0.005)
    raise AssertionError("the run never paused outside a yard lock")


def test_an_eval_of_best_made_while_the_run_trains_keeps_its_metrics(
    tiny_model: Callable[..., Path],
    topics_with_test: Path,
    tuneyard_process: Callable[..., subprocess.Popen[str]],
    tmp_path: Path,
) -> None:
    root = tmp_path / "yard"
    training = tuneyard_process(
        "--yard", root, "finetune", "--checkpoint", tiny_model("bert"), "--data", topics_with_test, *TRAINING
    )
    run = wait_for_best(root, training)
    pause_between_writes(training, root, run)
    try:
        paused_at = manifest(run)["training"]["step"]
        evaluated = subprocess.run(
            [
                sys.executable,
                "-m",
                "tuneyard",
                "--yard",
                str(root),
                "eval",
                "--checkpoint",
                str(run / "best"),
                "--data",
                str(topics_with_test),
                "--split",
                "test",
                "-q",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        assert evaluated.returncode == 0, evaluated.stderr
        scores = json.loads((run / "evaluation_results" / "topics_test" / "metrics.json").read_text())[
            "metrics"
        ]
        assert manifest(run)["metrics"]["topics_test"]["accuracy"] == scores["accuracy"]
    finally:
        os.kill(training.pid, signal.SIGCONT)
    _, stderr = training.communicate(timeout=300)
    assert training.returncode == 0, stderr

    final = manifest(run)
    assert final["status"] == "complete"
    assert final["training"]["step"] == 32 > paused_at  # the run wrote its manifest again after the eval
    assert final["metrics"]["topics_test"]["accuracy"] == scores["accuracy"]
    assert final["metrics"]["topics"]  # and its own validation metrics are there too
    listed = {entry["path"] for entry in final["files"]}
    assert "evaluation_results/topics_test/predictions.csv" in listed
