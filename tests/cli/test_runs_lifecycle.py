"""Names and lifecycle (issue 27, item 3): the yard's .gitignore, runs archive, runs rm."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tuneyard.release.registry import Registry
from tuneyard.yard import Manifest, Parent, Yard

BASE = "compressed_models/bert-base_fwsvd_r64"
LORA = "outputs/demo/sst2/bert_base_lora"
FULL = "outputs/demo/sst2/bert_base_full"

Run = Callable[..., Any]


def listed(tuneyard: Run, *args: str) -> list[str]:
    """The paths `runs ls --format json` prints."""
    result = tuneyard("runs", "ls", "--format", "json", *args)
    assert result.code == 0, result.err
    return sorted(row["path"] for row in json.loads(result.out))


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git command line")
def test_a_new_yard_keeps_its_heavy_folders_out_of_git(cli_yard: Yard) -> None:
    ignore = (cli_yard.root / ".gitignore").read_text()
    assert {".tuneyard/", "outputs/", "compressed_models/", "models/", "exports/"} <= set(ignore.splitlines())
    assert "releases/" not in ignore
    subprocess.run(["git", "init", "-q"], cwd=cli_yard.root, check=True)
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=cli_yard.root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert status.splitlines() == ["?? .gitignore"]


def test_a_users_gitignore_is_never_replaced(tmp_path: Path) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / ".gitignore").write_text("*.pyc\n")
    yard = Yard.open(root)
    with yard.create(Manifest(kind="export", name="e"), yard.target_path("export", name="e")) as writer:
        (writer.path / "model.gguf").write_bytes(b"gguf")
    assert yard.has_index
    assert (root / ".gitignore").read_text() == "*.pyc\n"


def test_archive_hides_a_run_until_undone_and_survives_reindex(cli_yard: Yard, tuneyard: Run) -> None:
    result = tuneyard("runs", "archive", "bert_base_full")
    assert (result.code, result.out) == (0, f"archived  {FULL}\n")
    assert FULL not in listed(tuneyard)
    assert FULL in listed(tuneyard, "--include-archived")
    assert (cli_yard.root / FULL / "manifest.json").is_file()  # files kept
    assert tuneyard("runs", "reindex", "-q").code == 0
    assert FULL not in listed(tuneyard)
    aggregated = tuneyard("runs", "aggregate", "--project", "demo")
    assert "bert_base_full" not in aggregated.out

    assert tuneyard("runs", "archive", "--undo", "bert_base_full").code == 0
    assert FULL in listed(tuneyard)
    tuneyard("runs", "archive", "bert_base_full")
    result = tuneyard("runs", "unarchive", FULL)
    assert (result.code, result.out) == (0, f"unarchived  {FULL}\n")
    assert listed(tuneyard) == sorted([BASE, LORA, FULL])


def test_rm_refuses_a_base_that_runs_started_from_and_names_them(cli_yard: Yard, tuneyard: Run) -> None:
    result = tuneyard("runs", "rm", BASE)
    assert result.code == 2
    assert result.err.startswith("error:")
    assert LORA in result.err and FULL in result.err and "--force" in result.err
    assert (cli_yard.root / BASE / "model.safetensors").is_file()

    forced = tuneyard("runs", "rm", BASE, "--force")
    assert forced.code == 0
    assert f"{LORA} keeps a parent link" in forced.err
    assert not (cli_yard.root / BASE).exists()
    assert listed(tuneyard) == sorted([LORA, FULL])


def test_rm_deletes_an_unreferenced_run_and_refuses_a_released_one(cli_yard: Yard, tuneyard: Run) -> None:
    result = tuneyard("runs", "rm", "bert_base_full")
    assert (result.code, result.out) == (0, f"removed  {FULL}\n")
    assert not (cli_yard.root / FULL).exists()
    assert FULL not in listed(tuneyard, "--include-archived")

    release = Registry(cli_yard).create("bert_base_lora", "sst2-bert", "first")
    refused = tuneyard("runs", "rm", "bert_base_lora")
    assert refused.code == 2
    assert f"release  {release.manifest['path']}" in refused.err
    assert (cli_yard.root / LORA).is_dir()


def test_rm_finds_referrers_of_a_part_and_after_a_rename(cli_yard: Yard, tuneyard: Run) -> None:
    """A merge of ``run/best`` names best/'s own id; a renamed run keeps its referrers by id."""
    best = cli_yard.root / LORA / "best"
    best.mkdir()
    best_manifest = Manifest(kind="finetuned", name="best", status="complete")
    (best / "manifest.json").write_text(best_manifest.to_json())
    merged = Manifest(
        kind="merged", name="m", status="complete", parents=[cli_yard.parent_link(best, "adapter")]
    )
    with cli_yard.create(merged, cli_yard.target_path("merged", arch="bert", name="m")) as writer:
        (writer.path / "model.safetensors").write_bytes(b"weights")
    renamed = cli_yard.root / "outputs/demo/sst2/renamed_lora"
    (cli_yard.root / LORA).rename(renamed)
    assert tuneyard("runs", "reindex", "-q").code == 0

    result = tuneyard("runs", "rm", "outputs/demo/sst2/renamed_lora")
    assert result.code == 2
    assert "merged  models/merged/bert/m" in result.err


def test_rm_refuses_a_running_run(cli_yard: Yard, tuneyard: Run) -> None:
    run = cli_yard.start_run(
        Manifest(kind="run", name="x", project="demo", dataset="sst2", parents=[Parent(path="bert-base")]),
        cli_yard.target_path("run", project="demo", dataset="sst2", name="live"),
    )
    result = tuneyard("runs", "rm", "live")
    assert result.code == 2 and "running" in result.err
    assert run.path.is_dir()


def test_rm_never_deletes_a_folder_imported_in_place_outside_the_yard(
    cli_yard: Yard, tuneyard: Run, tmp_path: Path
) -> None:
    """``runs import`` indexes a user's own folder where it is; ``rm`` refuses it, --force or not."""
    foreign = tmp_path / "mine" / "roberta-base_standard_r40"
    foreign.mkdir(parents=True)
    (foreign / "model.safetensors").write_bytes(b"w")
    assert tuneyard("runs", "import", str(tmp_path / "mine"), "-q").code == 0
    for extra in ((), ("--force",)):
        refused = tuneyard("runs", "rm", str(foreign), *extra)
        assert refused.code == 2 and refused.err.startswith("error:")
        assert "outside the yard" in refused.err
    assert (foreign / "model.safetensors").read_bytes() == b"w"
