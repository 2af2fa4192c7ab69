"""`tuneyard eval` as a user runs it: exit codes, printed scores, and `runs ls --where` finding the model."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tuneyard.yard import Yard


def test_eval_cli_in_yard_then_runs_ls_where_finds_the_run(
    yard: Yard,
    run_in_yard: Callable[..., Path],
    data_folder: Callable[..., Path],
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = run_in_yard("bert", name="scored")
    run_in_yard("bert", name="unscored")
    data = data_folder(rows=10)
    assert (
        run_cli(
            [
                "--yard",
                str(yard.root),
                "eval",
                "--checkpoint",
                str(run / "best"),
                "--data",
                str(data),
                "--batch-size",
                "4",
                "--quiet",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    table = dict(line.rsplit(None, 1) for line in captured.out.splitlines()[1:])
    accuracy = float(table["accuracy *"])
    assert f"results: {run / 'evaluation_results' / 'toy_validation'}" in captured.err
    assert "samples/s" in captured.err and "metrics.toy" in captured.err

    assert (
        run_cli(
            [
                "--yard",
                str(yard.root),
                "runs",
                "ls",
                "--where",
                f"metrics.toy.accuracy>={accuracy - 1e-6}",
                "--format",
                "json",
            ]
        )
        == 0
    )
    found = json.loads(capsys.readouterr().out)
    assert [row["name"] for row in found] == ["scored"]


def test_eval_cli_outside_yard_without_output_dir_exits_2(
    tmp_path: Path,
    yard: Yard,
    tiny_model: Callable[..., Path],
    data_folder: Callable[..., Path],
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = run_cli(
        [
            "--yard",
            str(yard.root),
            "eval",
            "--checkpoint",
            str(tiny_model("bert")),
            "--data",
            str(data_folder(rows=4)),
            "--quiet",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "outside the yard" in err and "--output-dir" in err


def test_an_imported_folder_outside_the_yard_is_told_a_fix_that_works(
    tmp_path: Path,
    yard: Yard,
    tiny_model: Callable[..., Path],
    data_folder: Callable[..., Path],
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    mine = shutil.copytree(tiny_model("bert"), tmp_path / "mine")
    data = str(data_folder(rows=4))
    root = ["--yard", str(yard.root)]
    assert run_cli([*root, "runs", "import", str(mine), "--quiet"]) == 0  # indexed where it is
    assert run_cli([*root, "eval", "--checkpoint", str(mine), "--data", data, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "outside the yard" in err and "import the model into the yard" not in err
    assert f"copy the folder into the yard ({yard.root}) and `tuneyard runs import` the copy" in err

    copy = shutil.copytree(mine, yard.root / "models" / "mine")  # what the hint says
    assert run_cli([*root, "runs", "import", str(copy), "--quiet"]) == 0
    assert run_cli([*root, "eval", "--checkpoint", str(copy), "--data", data, "--quiet"]) == 0
    assert (copy / "evaluation_results" / "toy_validation").is_dir()


def test_eval_cli_needs_exactly_one_of_task_or_data(
    yard: Yard,
    tiny_model: Callable[..., Path],
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run_cli(["--yard", str(yard.root), "eval", "--checkpoint", str(tiny_model("bert"))]) == 2
    assert "exactly one of --task NAME or --data DIR" in capsys.readouterr().err


def test_eval_cli_bad_batch_size_names_the_field(
    yard: Yard,
    tiny_model: Callable[..., Path],
    data_folder: Callable[..., Path],
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        run_cli(
            [
                "--yard",
                str(yard.root),
                "eval",
                "--checkpoint",
                str(tiny_model("bert")),
                "--data",
                str(data_folder(rows=4)),
                "--batch-size",
                "0",
            ]
        )
        == 2
    )
    assert "batch_size" in capsys.readouterr().err


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache that huggingface_hub reads instead of the user's."""
    import huggingface_hub.constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache


def cache_as_hub_model(model: Path, cache: Path, repo_id: str) -> None:
    """Lay ``model`` out as the cache does after ``snapshot_download(repo_id)``."""
    import shutil

    storage = cache / f"models--{repo_id.replace('/', '--')}"
    (storage / "refs").mkdir(parents=True)
    (storage / "refs" / "main").write_text("0123456789abcdef")
    shutil.copytree(model, storage / "snapshots" / "0123456789abcdef")


def test_eval_cli_takes_a_hub_id_from_the_cache_with_output_dir(
    tmp_path: Path,
    yard: Yard,
    tiny_model: Callable[..., Path],
    data_folder: Callable[..., Path],
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
    hub_cache: Path,
) -> None:
    cache_as_hub_model(tiny_model("bert"), hub_cache, "tuneyard-test/tiny-bert")
    data = data_folder(rows=6)
    base = [
        "--yard",
        str(yard.root),
        "eval",
        "--checkpoint",
        "tuneyard-test/tiny-bert",
        "--data",
        str(data),
        "--quiet",
    ]
    assert run_cli(base) == 2  # a hub model lies outside the yard: it needs --output-dir
    assert "--output-dir" in capsys.readouterr().err

    assert run_cli([*base, "--output-dir", str(tmp_path / "scores")]) == 0
    assert (tmp_path / "scores" / "toy_validation" / "summary_metrics.csv").is_file()
    assert not (yard.root / "evaluation_results").exists()


def test_eval_cli_hub_id_not_in_the_cache_offline_is_a_user_error(
    yard: Yard,
    data_folder: Callable[..., Path],
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
    hub_cache: Path,
    tmp_path: Path,
) -> None:
    code = run_cli(
        [
            "--yard",
            str(yard.root),
            "eval",
            "--checkpoint",
            "tuneyard-test/not-cached",
            "--data",
            str(data_folder(rows=4)),
            "--output-dir",
            str(tmp_path / "scores"),
            "--quiet",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "tuneyard-test/not-cached is not a local folder and could not be fetched from the hub" in " ".join(
        err.split()
    )
    assert not (tmp_path / "scores").exists()


def test_eval_cli_nb_eval_samples_scores_the_first_rows(
    yard: Yard,
    run_in_yard: Callable[..., Path],
    data_folder: Callable[..., Path],
    run_cli: Callable[[list[str]], int],
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = run_in_yard("bert", name="sampled")
    data = data_folder(rows=10)
    args = ["--yard", str(yard.root), "eval", "--checkpoint", str(run / "best"), "--data", str(data), "-q"]
    assert run_cli([*args, "--nb-eval-samples", "3"]) == 0
    assert "3 examples in" in capsys.readouterr().err
    predictions = run / "evaluation_results" / "toy_validation" / "predictions.csv"
    assert [line.split(",")[0] for line in predictions.read_text().splitlines()[1:]] == ["ex0", "ex1", "ex2"]


def test_eval_of_a_run_inside_an_experiment_files_its_scores_with_the_run_not_the_experiment(
    yard: Yard,
    tiny_model: Callable[..., Path],
    data_folder: Callable[..., Path],
    run_cli: Callable[[list[str]], int],
) -> None:
    import shutil

    from tuneyard.yard.manifest import Manifest, read_manifest, write_manifest

    experiment = yard.target_path("experiment", experiment="study")  # a grid's, with its eval grid's manifest
    write_manifest(experiment, Manifest(kind="experiment", name="study", path=yard.relative(experiment)))
    run = experiment / "finetuned_checkpoints" / "cell"
    shutil.copytree(tiny_model("bert"), run / "best")
    write_manifest(run, Manifest(kind="run", name="cell", path=yard.relative(run), status="complete"))
    data = data_folder(rows=10)

    code = run_cli(
        ["--yard", str(yard.root), "eval", "--checkpoint", str(run / "best"), "--data", str(data), "-q"]
    )

    assert code == 0
    assert (run / "evaluation_results" / "toy_validation" / "metrics.json").is_file()
    assert not (experiment / "evaluation_results").exists()
    assert "toy" in read_manifest(run).metrics and not read_manifest(experiment).metrics
