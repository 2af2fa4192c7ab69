"""A task type from a separate package: installed beside tuneyard, used through its CLI.

``tests/plugins/tuneyard_word_tags`` is a package of its own (its own pyproject.toml)
that registers a ``token_classification`` task type through the ``tuneyard.task_types``
entry point group. This test installs it into a temporary folder, puts that folder on
the path of a fresh ``tuneyard`` process, and fine-tunes and evaluates a tiny BERT on
word tags with tuneyard's CLI: nothing in tuneyard's own tree knows the task type.
The words are real (the first words of Debian package descriptions, data/debian_topics);
each is tagged ``function`` (a closed list of English function words) or ``content``.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).parent / "tuneyard_word_tags"
REPO = Path(__file__).resolve().parents[2]
FUNCTION_WORDS = frozenset(
    "a an and are as at be by can for from has in is it its of on or that the this to with".split()
)
ROWS = {"train": 160, "validation": 40, "test": 40}


def word_tag_rows(split: str, count: int) -> list[dict[str, list[str]]]:
    """The first 12 words of ``count`` descriptions of ``split``, each tagged function or content."""
    with (REPO / "data" / "debian_topics" / f"{split}.csv").open(newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)][:count]
    rows = []
    for text in texts:
        words = [word.strip(".,;:()\"'").lower() for word in text.split()][:12]
        words = [word for word in words if word]
        rows.append(
            {"tokens": words, "tags": ["function" if w in FUNCTION_WORDS else "content" for w in words]}
        )
    return rows


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The plugin installed (with pip, from a copy of its folder) into a folder of its own."""
    root = tmp_path_factory.mktemp("plugin")
    shutil.copytree(PLUGIN, root / "source")
    target = root / "site"
    command = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation"]
    subprocess.run([*command, "--target", str(target), str(root / "source")], check=True, timeout=300)
    return target


@pytest.fixture(scope="module")
def word_tags(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("data") / "word_tags"
    folder.mkdir()
    for split, count in ROWS.items():
        lines = [json.dumps(row) for row in word_tag_rows(split, count)]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def tuneyard(plugin_path: Path | None, *args: object) -> subprocess.CompletedProcess[str]:
    """``tuneyard ARGS`` in a fresh process that sees the installed plugin (None: tuneyard alone)."""
    paths = [str(plugin_path or ""), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(path for path in paths if path)}
    command = [sys.executable, "-m", "tuneyard", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)


def test_a_plugin_task_type_finetunes_and_evaluates_through_the_cli(
    tmp_path, plugin_path, word_tags, tiny_model
):
    yard = tmp_path / "yard"
    trained = tuneyard(
        plugin_path,
        "--yard", yard,
        "finetune",
        "--checkpoint", tiny_model("bert"),
        "--data", word_tags,
        "--epochs", 4,
        "--learning-rate", "3e-3",
        "--batch-size", 16,
        "--max-length", 32,
        "--label-all-subwords",
        "--quiet",
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    (run,) = [
        path.parent
        for path in yard.glob("models/finetuned/**/manifest.json")
        if path.parent.name not in ("best", "last")
    ]
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["task_type"] == "token_classification"
    assert manifest["status"] == "complete"
    assert manifest["config"]["task_options"] == {"label_all_subwords": True}  # the plugin's own option
    assert json.loads((run / "best" / "manifest.json").read_text())["task_type"] == "token_classification"

    scored = tuneyard(
        plugin_path, "--yard", yard, "eval", "--checkpoint", run, "--data", word_tags, "--split", "test"
    )
    assert scored.returncode == 0, scored.stderr
    (metrics_file,) = run.glob("**/evaluation_results/**/metrics.json")
    accuracy = json.loads(metrics_file.read_text())["metrics"]["accuracy"]
    tags = [tag for row in word_tag_rows("test", ROWS["test"]) for tag in row["tags"]]
    majority = max(tags.count("function"), tags.count("content")) / len(tags)
    assert accuracy > majority, f"accuracy {accuracy:.3f} does not beat always-{majority:.3f}"

    # The plugin declares no compression role: compress refuses its models by name.
    compress = ("compress", "--checkpoint", run / "best", "--method", "standard", "--ratio", "0.5")
    refused = tuneyard(plugin_path, "--yard", yard, *compress)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    assert "task type token_classification does not say how to compress" in " ".join(refused.stderr.split())
    assert not (yard / "compressed_models").exists()


def test_without_the_plugin_the_task_type_is_unknown(tmp_path, word_tags):
    """The same data read by tuneyard alone: no task type claims the columns, and the default one says so."""
    result = tuneyard(None, "--yard", tmp_path, "finetune", "--checkpoint", "x", "--data", word_tags)
    assert result.returncode == 2, result.stderr
    assert "text" in result.stderr and "Traceback" not in result.stderr


def test_a_plugin_brings_its_own_options_to_finetune(tmp_path, plugin_path, topics_data):
    """Its options model is offered as flags in a --help panel of its own, and refused for other data."""
    shown = tuneyard(plugin_path, "finetune", "--help")
    assert shown.returncode == 0, shown.stderr
    assert "Task type token_classification" in shown.stdout and "--label-all-subwords" in shown.stdout
    refused = tuneyard(
        plugin_path,
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        "x",
        "--data",
        topics_data,
        "--label-all-subwords",
    )
    assert refused.returncode == 2, refused.stderr
    assert "sequence_classification takes no options of its own" in " ".join(refused.stderr.split())
    assert not (tmp_path / "models").exists()
