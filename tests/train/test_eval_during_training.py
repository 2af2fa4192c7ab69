"""``tuneyard eval`` of a run's best/ while the run still trains: the eval's metrics survive.

Two real processes: a fine-tuning run, and an eval of its ``best/`` made while the run
is paused (SIGSTOP) with many evaluations still to go. Every later manifest write of
the run (after each evaluation, and the final one) must keep the eval's metrics key
and the files it listed.
"""

from __future__ import annotations

import json
import os
import signal
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
    os.kill(training.pid, signal.SIGSTOP)
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
