"""``tuneyard release``: versions, the model card, the changelog, aliases and loading, end to end."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from tuneyard.yard.index import flatten_metrics


def released(cli, yard, *args: object) -> Path:  # type: ignore[no-untyped-def]
    result = cli("release", *args)
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1])


def manifest_of(folder: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((folder / "manifest.json").read_text())


def test_a_release_has_a_model_card_the_hub_library_parses(cli, yard) -> None:
    folder = released(cli, yard, yard.first, "--name", "topics", "--notes", "First topics model.",
                      "--license", "apache-2.0")  # fmt: skip
    assert folder == yard.root / "releases" / "topics" / "1.0.0"
    run = manifest_of(yard.first)
    release = manifest_of(folder)
    assert release["kind"] == "release" and release["status"] == "complete"
    assert release["parents"] == [{"id": run["id"], "path": run["path"], "role": "release"}]
    assert [entry["path"] for entry in release["files"]] == ["README.md"]  # no weights copied

    card = ModelCard.load(folder / "README.md")
    assert card.data.license == "apache-2.0"
    assert card.data.datasets == ["debian_topics"]
    assert card.data.base_model.endswith("tiny-bert-l2-c6")
    assert {"tuneyard", "sequence_classification", "lora"} <= set(card.data.tags)
    assert card.data.pipeline_tag == "text-classification"
    results = {result.metric_name: result.metric_value for result in card.data.eval_results}
    assert results and results == flatten_metrics(run["metrics"])
    for heading in ("## Metrics", "## Lineage", "## Training config", "## Library versions", "## Loading"):
        assert heading in card.text
    assert f"`{run['path']}`" in card.text and "learning_rate" in card.text
    assert f"`{run['versions']['transformers']}`" in card.text
    down = cli("runs", "lineage", yard.first, "--down").stdout
    assert down.splitlines()[1:] == ["  release  releases/topics/1.0.0"]


def test_the_cards_loading_example_runs_as_written(cli, yard) -> None:
    folder = released(cli, yard, yard.first, "--name", "topics", "--notes", "x")
    snippet = re.search(r"```python\n(.*?)```", (folder / "README.md").read_text(), re.S)
    assert snippet is not None
    env = {key: value for key, value in os.environ.items() if key != "TUNEYARD_HOME"}
    ran = subprocess.run(
        [sys.executable, "-c", snippet.group(1)], cwd=yard.root, env=env, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "PeftModelForSequenceClassification"


def test_a_second_version_gets_a_changelog_entry_with_metric_deltas(cli, yard) -> None:
    released(cli, yard, yard.first, "--name", "topics", "--notes", "Baseline.")
    second = released(cli, yard, yard.second, "--name", "topics", "--notes", "Higher learning rate.")
    assert second.name == "1.1.0"  # --bump minor by default
    changelog = (yard.root / "releases" / "topics" / "CHANGELOG.md").read_text()
    assert changelog.index("## 1.1.0 - ") < changelog.index("## 1.0.0 - ")
    newest = changelog[: changelog.index("## 1.0.0")]
    assert "Higher learning rate." in newest and f"`{manifest_of(yard.second)['path']}`" in newest
    before = flatten_metrics(manifest_of(yard.first)["metrics"])
    after = flatten_metrics(manifest_of(yard.second)["metrics"])
    for key in before.keys() & after.keys():
        delta = f"- {key}: {before[key]:.4g} -> {after[key]:.4g} ({after[key] - before[key]:+.4g})"
        assert delta in newest
    assert "- config learning_rate: 0.001 -> 0.003" in newest
    assert "- first release" in changelog[changelog.index("## 1.0.0") :]


def test_aliases_move_with_a_log_and_load_the_model_they_point_at(cli, yard) -> None:
    import tuneyard

    released(cli, yard, yard.first, "--name", "topics", "--notes", "a")
    released(cli, yard, yard.second, "--name", "topics", "--notes", "b")
    assert (
        cli("release", "alias", "topics@1.0.0", "production").stdout == "topics@production: (new) -> 1.0.0\n"
    )
    assert (
        cli("release", "alias", "topics@1.1.0", "production").stdout == "topics@production: 1.0.0 -> 1.1.0\n"
    )
    log = (yard.root / "releases" / "topics" / "aliases.log").read_text().splitlines()
    assert [(json.loads(line)["before"], json.loads(line)["after"]) for line in log] == [
        (None, "1.0.0"),
        ("1.0.0", "1.1.0"),
    ]
    shown = cli("release", "show", "topics@production")
    assert shown.stdout.startswith("release   topics@1.1.0\naliases   production\n")
    assert "production  1.0.0 -> 1.1.0" in shown.stdout
    listing = json.loads(cli("release", "ls", "--format", "json").stdout)
    assert [(row["version"], row["aliases"]) for row in listing] == [("1.0.0", []), ("1.1.0", ["production"])]

    model = tuneyard.load("release:topics@production")
    direct = tuneyard.load(yard.second)
    other = tuneyard.load(yard.first)
    key = next(name for name, _ in model.named_parameters() if "lora_B" in name)
    weights = {name: value for name, value in model.named_parameters()}
    assert torch.equal(weights[key], dict(direct.named_parameters())[key])
    assert not torch.equal(weights[key], dict(other.named_parameters())[key])


def test_releases_of_one_name_at_once_get_distinct_versions_or_a_conflict(yard) -> None:
    def start(*args: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "tuneyard", "release", str(yard.first), "--name", "race", *args]
        return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    bumps = [start("--bump", "patch", "--notes", f"bump {n}") for n in range(2)]
    outcomes = [(process.wait(), *process.communicate()) for process in bumps]
    assert [code for code, _, _ in outcomes] == [0, 0], outcomes
    assert sorted(Path(out.strip()).name for _, out, _ in outcomes) == ["1.0.0", "1.0.1"]

    same = [start("--version", "2.0.0", "--notes", f"same {n}") for n in range(2)]
    outcomes = sorted((process.wait(), *process.communicate()) for process in same)
    assert [code for code, _, _ in outcomes] == [0, 2], outcomes
    assert "race 2.0.0 is released already" in outcomes[1][2]

    folder = yard.root / "releases" / "race"
    versions = sorted(path.name for path in folder.iterdir() if path.is_dir())
    assert versions == ["1.0.0", "1.0.1", "2.0.0"]  # nothing half-written beside them
    notes = {manifest_of(folder / version)["release"]["notes"] for version in versions}
    assert len(notes) == 3  # each folder holds one writer's release, whole
    changelog = (folder / "CHANGELOG.md").read_text()
    assert [line[3:8] for line in changelog.splitlines() if line.startswith("## ")] == [
        "2.0.0",
        "1.0.1",
        "1.0.0",
    ]


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("no-such-run", "--name", "t"), ("no artifact named 'no-such-run'", "tuneyard runs ls")),
        (("FIRST", "--name", "t", "--version", "1.2"), ("'1.2' is not MAJOR.MINOR.PATCH", "--bump minor")),
        (("FIRST", "--name", "t", "--version", "1.0.0"),
         ("t 1.0.0 is released already", "--bump patch gives 1.0.1")),
        (("FIRST", "--name", "a/b"), ("release name 'a/b' is not a plain name",)),
    ],
)  # fmt: skip
def test_bad_input_is_an_error_with_a_fix_and_leaves_nothing(cli, yard, args, fragments) -> None:
    released(cli, yard, yard.first, "--name", "t", "--notes", "kept")
    before = sorted(path.relative_to(yard.root) for path in (yard.root / "releases").rglob("*"))
    result = cli("release", *(str(yard.first) if arg == "FIRST" else arg for arg in args), "--notes", "n")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    for fragment in fragments:
        assert fragment in result.stderr
    assert sorted(path.relative_to(yard.root) for path in (yard.root / "releases").rglob("*")) == before


def test_unknown_versions_and_aliases_name_what_there_is(cli, yard) -> None:
    released(cli, yard, yard.first, "--name", "t", "--notes", "kept")
    result = cli("release", "show", "t@staging")
    assert result.exit_code == 2 and "t has no version or alias 'staging'" in result.stderr
    assert "Versions: 1.0.0. Aliases: none." in result.stderr
    assert cli("release", "alias", "t@1.0.0", "2.0.0").exit_code == 2


def test_a_release_finds_its_artifact_by_id_after_a_move_and_says_when_it_is_gone(cli, yard) -> None:
    import tuneyard
    from tuneyard.errors import ArtifactNotFoundError
    from tuneyard.release.loading import release_folder

    released(cli, yard, yard.first, "--name", "t", "--notes", "kept")
    moved = yard.root / "archive" / "topics-a"
    moved.parent.mkdir()
    yard.first.rename(moved)
    assert cli("runs", "reindex", "--quiet").exit_code == 0
    assert release_folder("release:t@1.0.0") == moved
    shutil.rmtree(moved)
    with pytest.raises(ArtifactNotFoundError, match="the artifact of t@1.0.0, archive/topics-a, is gone"):
        tuneyard.load("release:t")
