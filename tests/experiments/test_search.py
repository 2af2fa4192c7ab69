"""The smallest model within X points of dense: the bisection, and a search chosen on validation, reported on
test, run and rerun on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from topic_data import write_topic_csvs

from tuneyard.evaluate.paired import bootstrap_interval, paired_arrays, row_scores
from tuneyard.experiments.search import bisect_ratios


def test_the_bisection_finds_the_smallest_ratio_that_meets_the_target() -> None:
    asked: list[float] = []

    def meets(ratio: float) -> bool:
        asked.append(ratio)
        return ratio >= 0.37

    assert bisect_ratios(0.1, 0.9, 12, meets) in (0.37, 0.38)
    assert asked[:3] == [0.9, 0.5, 0.3] and len(asked) <= 8  # halving, stopped when nothing new is left


def test_when_even_the_largest_ratio_misses_nothing_smaller_is_tried() -> None:
    asked: list[float] = []
    assert bisect_ratios(0.1, 0.9, 6, lambda ratio: asked.append(ratio) or False) is None
    assert asked == [0.9]


def test_a_search_runs_its_probes_files_its_path_and_reuses_them(cli, tiny_model, tmp_path) -> None:
    data = write_topic_csvs(
        tmp_path / "topics", ("sports", "cooking"), {"train": 48, "validation": 16, "test": 16}
    )
    yard = tmp_path / "yard"
    training = (
        "--epochs",
        "2",
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--learning-rate",
        "1e-3",
        "--quiet",
    )
    dense = cli("--yard", yard, "finetune", "--checkpoint", tiny_model("bert"), "--data", data, *training)
    assert dense.exit_code == 0, dense.stderr
    run = Path(dense.stdout.strip().splitlines()[-1])
    spec = {
        "experiment": "smallest",
        "search": {
            "model": str(run / "best"), "data": str(data), "methods": ["whiten"], "ratios": [0.2, 0.8],
            "within": 0.99, "probes": 3, "calib_samples": 16,
            "recovery": {"epochs": 1, "batch_size": 8, "max_length": 32, "learning_rate": 1e-3},
        },
    }  # fmt: skip
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(spec))
    first = cli("--yard", yard, "grid", path)
    assert first.exit_code == 0, first.stderr
    assert first.stdout.split("\n")[1].split()[:2] == ["whiten", "0.35"]  # every probe meets a 0.99 tolerance
    journal = json.loads((yard / "experiments" / "smallest" / "search.json").read_text())
    assert sorted(probe["ratio"] for probe in journal["probes"].values()) == [0.35, 0.5, 0.8]
    kept_paths = [probe[field] for probe in journal["probes"].values() for field in ("folder", "model")]
    kept_paths += [json.loads(key)[0] for key in journal["evals"]]
    assert not any(Path(path).is_absolute() for path in kept_paths)  # the same on another machine
    probes = sorted((yard / "experiments" / "smallest" / "search").iterdir())
    assert len(probes) == 3 and all((probe / "recovered").is_dir() for probe in probes)

    spec["search"]["probes"] = 4
    path.write_text(yaml.safe_dump(spec))
    more = cli("--yard", yard, "grid", path)
    assert more.exit_code == 0, more.stderr
    assert more.stdout.split("\n")[1].split()[:2] == ["whiten", "0.28"]
    assert len(list((yard / "experiments" / "smallest" / "search").iterdir())) == 4  # one new probe only

    # Chosen on validation, reported on test: each number is what `tuneyard eval` gives on that split.
    report = json.loads((yard / "experiments" / "smallest" / "search.json").read_text())["report"]
    assert (report["select_on"], report["report_on"]) == ("validation", "test")
    for candidate in report["candidates"]:
        assert not Path(candidate["model"]).is_absolute()  # inside the yard, relative to it
        target = tmp_path / "check" / candidate["label"].replace(" ", "_")
        check = cli(
            "--yard", yard, "eval", "--checkpoint", yard / candidate["model"], "--data", data,
            "--split", "test", "--output-dir", target,
        )  # fmt: skip
        accuracy = next(line.split()[-1] for line in check.stdout.splitlines() if line.startswith("accuracy"))
        assert candidate["score"] == pytest.approx(float(accuracy), abs=1e-4)
        assert candidate["low"] <= candidate["score"] <= candidate["high"]
    assert [candidate["label"] for candidate in report["candidates"]] == ["dense", "whiten 0.28 (seed 0)"]
    assert report["candidates"][1]["versus_dense"]["rows"] == 16  # paired with dense on the same test rows
    assert "on test (chosen on validation; 95% bootstrap intervals over the rows)" in more.stdout

    spec["search"] |= {"recovery": None, "probes": 1, "within": 0.0, "calib_seeds": 2}
    path.write_text(yaml.safe_dump(spec))
    unrecovered = cli("--yard", yard, "grid", path)
    assert unrecovered.exit_code == 0, unrecovered.stderr
    journal = json.loads((yard / "experiments" / "smallest" / "search.json").read_text())
    new = [
        probe for probe in journal["probes"].values() if not (yard / probe["folder"] / "recovered").exists()
    ]
    assert {probe["ratio"] for probe in new} == {0.8}  # a new probe (recovery shapes its id), not recovered
    assert all((yard / probe["folder"] / "compressed" / "manifest.json").is_file() for probe in new)
    # A second calibration seed is made exactly when the first model's interval to dense holds the tolerance.
    first = next(probe for probe in new if probe["seed"] == 0)
    key = json.dumps([(run / "best").relative_to(yard).as_posix(), str(data), "validation", "accuracy"])
    dense_rows, first_rows = (
        row_scores(yard / journal["evals"][key]["results"]),
        row_scores(yard / first["results"]),
    )
    dense_array, first_array = paired_arrays(dense_rows, first_rows)  # type: ignore[arg-type]
    low, high = bootstrap_interval(first_array - dense_array)
    assert len(new) == (2 if low <= 0.0 <= high else 1)

    spec["search"]["split"] = "test"
    path.write_text(yaml.safe_dump(spec))
    old_field = cli("--yard", yard, "grid", path)
    assert old_field.exit_code == 2 and "report_on: test" in " ".join(old_field.stderr.split())


def test_a_journal_written_with_absolute_paths_in_the_yard_is_read_with_yard_relative_ones(
    tmp_path: Path,
) -> None:
    from tuneyard.experiments.search import Journal
    from tuneyard.yard import Yard

    yard = Yard.open(tmp_path / "yard")
    probe_folder = yard.root / "experiments" / "e" / "search" / "whiten-0.5-abc"
    path = yard.root / "experiments" / "e" / "search.json"
    path.parent.mkdir(parents=True)
    old = {
        "probes": {
            "abc": {"folder": str(probe_folder), "model": str(probe_folder / "compressed"), "score": 0.5}
        },
        "evals": {
            json.dumps([str(probe_folder / "compressed"), "topics", "validation", "accuracy"]): {
                "score": 0.5
            },
            json.dumps(["org/hub-model", "topics", "validation", "accuracy"]): {"score": 0.75},
        },
    }
    path.write_text(json.dumps(old))

    journal = Journal(path, yard)
    journal.write()

    stored = json.loads(path.read_text())
    relative = "experiments/e/search/whiten-0.5-abc"
    assert stored["probes"]["abc"] == {"folder": relative, "model": f"{relative}/compressed", "score": 0.5}
    assert journal.evals[journal.eval_key(probe_folder / "compressed", "topics", "validation", "accuracy")]
    assert [json.loads(key)[0] for key in stored["evals"]] == [f"{relative}/compressed", "org/hub-model"]
