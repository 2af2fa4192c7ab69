"""Many real processes writing into one yard at the same instant, over several rounds.

Each test starts its writers, waits until every one stands at the start line, then
lets them all go at once: claims of one name, registrations in one index, metric keys
added to one manifest, and two real ``tuneyard eval`` processes filing into one run.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tuneyard.yard import Manifest, Yard, read_manifest, write_manifest

PROCESSES = 8
ROUNDS = 3
SRC = Path(__file__).resolve().parents[2] / "src"

START_LINE = """
import sys, time
from pathlib import Path
go = Path(sys.argv[1])
(go.parent / f"ready-{sys.argv[2]}").write_text("")
while not go.exists():
    time.sleep(0.0005)
"""


def race(script: str, folder: Path, *args: str, processes: int = PROCESSES) -> list[str]:
    """Run ``script`` in ``processes`` fresh interpreters released at the same instant; their stdouts.

    The script sees ``sys.argv[2]`` (its number) and ``sys.argv[3:]`` (``args``).
    """
    folder.mkdir(parents=True, exist_ok=True)
    go = folder / "go"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    racers = [
        subprocess.Popen(
            [sys.executable, "-c", START_LINE + script, str(go), str(number), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for number in range(processes)
    ]
    deadline = time.monotonic() + 120
    while len(list(folder.glob("ready-*"))) < processes:
        assert time.monotonic() < deadline and all(racer.poll() is None for racer in racers)
        time.sleep(0.01)
    go.write_text("go")
    results = [racer.communicate(timeout=300) for racer in racers]
    assert [racer.returncode for racer in racers] == [0] * processes, [error[-2000:] for _, error in results]
    return [output for output, _ in results]


CLAIMER = """
from tuneyard.yard import Manifest, Yard
yard = Yard.open(sys.argv[3])
name = sys.argv[4]
target = yard.target_path("export", name=name)
with yard.create(Manifest(kind="export", name=name), target) as writer:
    (writer.path / "who.txt").write_text(sys.argv[2])
print(writer.final_path)
"""


def test_processes_racing_for_one_name_all_succeed_with_distinct_folders(yard: Yard, tmp_path: Path) -> None:
    for round_number in range(ROUNDS):
        name = f"same-name-{round_number}"
        outputs = race(CLAIMER, tmp_path / f"round{round_number}", str(yard.root), name)
        folders = sorted((Path(output.strip()) for output in outputs), key=lambda folder: folder.name)
        assert sorted(folder.name for folder in folders) == sorted(
            [name, *(f"{name}-{number}" for number in range(2, PROCESSES + 1))]
        )
        assert sorted((folder / "who.txt").read_text() for folder in folders) == [
            str(n) for n in range(PROCESSES)
        ]
        assert all(read_manifest(folder).status == "complete" for folder in folders)
    assert len(yard.query()) == PROCESSES * ROUNDS
    assert not list((yard.root / "exports").glob(".tmp-*"))


REGISTRAR = """
from tuneyard.yard import Manifest, Yard
yard = Yard.open(sys.argv[3])
for item in range(5):
    name = f"p{sys.argv[2]}-r{sys.argv[4]}-{item}"
    with yard.create(Manifest(kind="export", name=name, metrics={"item": item}),
                     yard.target_path("export", name=name)) as writer:
        (writer.path / "f").write_text(name)
"""


def test_processes_registering_at_once_all_reach_the_index(yard: Yard, tmp_path: Path) -> None:
    for round_number in range(ROUNDS):
        race(REGISTRAR, tmp_path / f"round{round_number}", str(yard.root), str(round_number))
        rows = yard.query(where=f"name ~ '*-r{round_number}-*'")
        assert len(rows) == PROCESSES * 5
        assert sorted(row["metrics"]["item"] for row in rows) == sorted([0.0, 1.0, 2.0, 3.0, 4.0] * PROCESSES)
    assert yard.reindex().indexed == PROCESSES * 5 * ROUNDS


UPDATER = """
from pathlib import Path
from tuneyard.yard.manifest import update_manifest
for item in range(10):
    update_manifest(Path(sys.argv[3]), lambda m: m.metrics.update({f"p{sys.argv[2]}_{item}": {"v": item}}))
"""


def test_processes_adding_metrics_to_one_manifest_lose_none(
    yard: Yard, make_artifact: Callable[..., Path], tmp_path: Path
) -> None:
    artifact = make_artifact("export", layout={"name": "shared"})
    for round_number in range(ROUNDS):
        race(UPDATER, tmp_path / f"round{round_number}", str(artifact))
    metrics = read_manifest(artifact).metrics
    assert sorted(metrics) == sorted(f"p{p}_{item}" for p in range(PROCESSES) for item in range(10))
    assert sorted(path.name for path in artifact.iterdir()) == ["manifest.json", "model.safetensors"]


def test_two_evals_filing_into_one_run_at_once_keep_both_keys(
    yard: Yard, tiny_model: Callable[..., Path], tmp_path: Path
) -> None:
    run = yard.target_path("run", project="p", dataset="toy", name="run")
    shutil.copytree(tiny_model("bert"), run / "best")
    manifest = Manifest(kind="run", name="run", path=yard.relative(run), status="complete", arch="bert")
    write_manifest(run, manifest)
    yard.register(manifest)
    data = tmp_path / "toy"
    data.mkdir()
    for split in ("train", "validation", "test"):
        with (data / f"{split}.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            writer.writerows([f"{split} row {i}", i % 2] for i in range(12))
    evaluator = """
from tuneyard.cli import main
main(["--yard", sys.argv[3], "eval", "--checkpoint", sys.argv[4], "--data", sys.argv[5],
      "--split", ["validation", "test"][int(sys.argv[2])], "-q"])
"""
    race(evaluator, tmp_path / "evals", str(yard.root), str(run / "best"), str(data), processes=2)
    saved = read_manifest(run)
    assert {"toy", "toy_test"} <= set(saved.metrics)
    for key, split in (("toy", "validation"), ("toy_test", "test")):
        document = json.loads((run / "evaluation_results" / f"toy_{split}" / "metrics.json").read_text())
        assert saved.metrics[key]["accuracy"] == document["metrics"]["accuracy"]
    listed = {entry.path for entry in saved.files}
    assert {
        "evaluation_results/toy_validation/predictions.csv",
        "evaluation_results/toy_test/predictions.csv",
    } <= listed
    assert (
        yard.query(where="metrics.toy.accuracy >= 0 and metrics.toy_test.accuracy >= 0")[0]["name"] == "run"
    )
