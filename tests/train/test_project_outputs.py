"""``finetune --project P``: the project's ``metrics.csv`` and each run's ``{name}_weights.png``.

Four real runs of one project on a tiny 2-layer BERT: two in this process, then two as
``tuneyard`` processes started together, whose ends are made to overlap: the first
refresh of ``metrics.csv`` waits (inside its lock) until the other run has completed.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

import tuneyard

QUICK = ("--epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3")
SRC = Path(tuneyard.__file__).resolve().parents[1]

# `tuneyard ARGS` in a fresh interpreter, in one of two roles that make two runs' ends
# overlap in the order a lock-free refresh gets wrong. "first": its metrics.csv refresh,
# once it has read the index, marks that and waits until the "second" run has started its
# own refresh, then until that has written metrics.csv with all four runs (at most 5 s:
# with the lock it cannot), and only then writes its own table. "second": its run waits
# for the first's mark before it completes. Without the lock, the first's older table,
# a row short, would be written last.
OVERLAP = """
import sys, time
from pathlib import Path
role, yard = sys.argv[1], Path(sys.argv[2])
read, refreshing = yard / "first-has-read-the-index", yard / "second-is-refreshing"
metrics = yard / "outputs" / "clic" / "metrics.csv"

def wait_for(condition, seconds=300):
    deadline = time.time() + seconds
    while not condition() and time.time() < deadline:
        time.sleep(0.05)

if role == "first":
    import tuneyard.yard.project as project
    real = project.aggregate_table
    def aggregate_table(records):
        print(f"refresh of {len(records)} runs", file=sys.stderr, flush=True)
        read.touch()
        wait_for(refreshing.exists)
        wait_for(lambda: len(metrics.read_text().splitlines()) == 5, seconds=5)
        return real(records)
    project.aggregate_table = aggregate_table
else:
    import tuneyard.train.project as project
    from tuneyard.yard.writer import RunWriter
    real_complete, real_refresh = RunWriter.complete, project.refresh_project_metrics
    def complete(self):
        wait_for(read.exists)
        real_complete(self)
    def refresh(*args):
        refreshing.touch()
        return real_refresh(*args)
    RunWriter.complete, project.refresh_project_metrics = complete, refresh
from tuneyard.cli import main
main(sys.argv[3:])
"""


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def pixel_variance(png: Path) -> float:
    return float(np.asarray(Image.open(png).convert("L"), dtype=np.float64).var())


def start(role: str, yard: Path, *args: object) -> subprocess.Popen[str]:
    """``python -c OVERLAP ROLE ... finetune ARGS`` with this checkout's tuneyard on PYTHONPATH."""
    env = {
        **os.environ,
        "PYTHONPATH": str(SRC),
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    command = [sys.executable, "-c", OVERLAP, role, yard, "--yard", yard, "finetune", *args]
    return subprocess.Popen(
        list(map(str, command)), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_four_runs_two_concurrent_give_one_row_each_and_weight_plots(
    cli, tiny_model, topics_with_test, tmp_path
) -> None:
    model = tiny_model("bert", layers=2)
    common = ("--checkpoint", model, "--data", topics_with_test, "--project", "clic", *QUICK)
    runs = []
    for strategy in (("--strategy", "lora", "--lora-layers", "0"), ("--strategy", "full")):
        result = cli("--yard", tmp_path, "finetune", *common, *strategy)
        assert result.exit_code == 0, result.stderr
        runs.append(Path(result.stdout.strip()))
    project = tmp_path / "outputs" / "clic"
    assert [row["name"] for row in read_csv(project / "metrics.csv")] == [
        "bert_tiny_lora_0",
        "bert_tiny_full",
    ]

    workers = [
        start("first", tmp_path, *common, "--strategy", "frozen"),
        start("second", tmp_path, *common, "--strategy", "lora", "--lora-layers", "1"),
    ]
    outputs = [worker.communicate(timeout=600) for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], [err for _, err in outputs]
    runs += [Path(out.strip()) for out, _ in outputs]
    # The first refresh read the index before the second run completed and wrote after it.
    first_refresh = [line for line in outputs[0][1].splitlines() if line.startswith("refresh of")]
    assert first_refresh == ["refresh of 3 runs"], outputs[0][1]

    rows = read_csv(project / "metrics.csv")
    assert sorted(row["name"] for row in rows) == sorted(run.name for run in runs) and len(rows) == 4
    by_name = {row["name"]: row for row in rows}
    trainable = {name: int(float(row["training.trainable_parameters"])) for name, row in by_name.items()}
    assert trainable["bert_tiny_lora_0"] < trainable["bert_tiny_full"]
    assert trainable["bert_tiny_frozen"] < trainable["bert_tiny_lora_0"]
    for row in rows:
        assert row["status"] == "complete" and float(row["training.train_runtime"]) > 0
        assert 0 <= float(row["metrics.topics.accuracy"]) <= 1

    # Test scores that `tuneyard eval` adds to a completed run join its row.
    full = runs[1]
    scored = cli(
        "--yard",
        tmp_path,
        "eval",
        "--checkpoint",
        full / "best",
        "--data",
        topics_with_test,
        "--split",
        "test",
    )
    assert scored.exit_code == 0, scored.stderr
    rows = {row["name"]: row for row in read_csv(project / "metrics.csv")}
    assert len(rows) == 4 and 0 <= float(rows["bert_tiny_full"]["metrics.topics_test.accuracy"]) <= 1
    assert rows["bert_tiny_frozen"]["metrics.topics_test.accuracy"] == ""

    norms = {}
    for run in runs:
        png = run.with_name(f"{run.name}_weights.png")
        assert png.read_bytes().startswith(b"\x89PNG") and pixel_variance(png) > 500, run.name
        numbers = read_csv(run.with_name(f"{run.name}_weights.csv"))
        assert {int(row["layer"]) for row in numbers} == {0, 1}
        norms[run.name] = {(row["module"], int(row["layer"])): float(row["norm"]) for row in numbers}
    for name, chosen in (("bert_tiny_lora_0", {0}), ("bert_tiny_lora_1", {1})):
        assert {layer for (_, layer), norm in norms[name].items() if norm > 0} == chosen
        assert all(norm > 0 for (_, layer), norm in norms[name].items() if layer in chosen)
    assert all(norm > 0 for norm in norms["bert_tiny_full"].values())
    assert all(norm == 0 for norm in norms["bert_tiny_frozen"].values())
