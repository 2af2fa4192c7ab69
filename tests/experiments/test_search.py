"""The smallest model within X points of dense: the bisection, and a search run and rerun on a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from topic_data import write_topic_csvs

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
    probes = sorted((yard / "experiments" / "smallest" / "search").iterdir())
    assert len(probes) == 3 and all((probe / "recovered").is_dir() for probe in probes)

    spec["search"]["probes"] = 4
    path.write_text(yaml.safe_dump(spec))
    more = cli("--yard", yard, "grid", path)
    assert more.exit_code == 0, more.stderr
    assert more.stdout.split("\n")[1].split()[:2] == ["whiten", "0.28"]
    assert len(list((yard / "experiments" / "smallest" / "search").iterdir())) == 4  # one new probe only

    spec["search"] |= {"recovery": None, "probes": 1}
    path.write_text(yaml.safe_dump(spec))
    unrecovered = cli("--yard", yard, "grid", path)
    assert unrecovered.exit_code == 0, unrecovered.stderr
    journal = json.loads((yard / "experiments" / "smallest" / "search.json").read_text())
    new = [probe for probe in journal["probes"].values() if not Path(probe["folder"], "recovered").exists()]
    assert len(new) == 1 and new[0]["ratio"] == 0.8  # a new probe (recovery shapes its id), not recovered
    assert (Path(new[0]["folder"]) / "compressed" / "manifest.json").is_file()

    spec["search"] |= {"split": "validation"}
    path.write_text(yaml.safe_dump(spec))
    on_validation = cli("--yard", yard, "grid", path)
    assert on_validation.exit_code == 0, on_validation.stderr
    journal = json.loads((yard / "experiments" / "smallest" / "search.json").read_text())
    assert journal["dense_of"]["split"] == "validation"  # scored again, not reused from the test split
    check = ("--split", "validation", "--output-dir", tmp_path / "check")
    validation = cli("--yard", yard, "eval", "--checkpoint", run / "best", "--data", data, *check)
    assert f"dense: accuracy {journal['dense']:.4f}" in on_validation.stderr
    accuracy = next(
        line.split()[-1] for line in validation.stdout.splitlines() if line.startswith("accuracy")
    )
    assert journal["dense"] == pytest.approx(float(accuracy), abs=1e-4)  # tuneyard eval's validation score
