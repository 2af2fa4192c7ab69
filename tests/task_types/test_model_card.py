"""Model cards of the folders tuneyard writes, and adapters that survive a moved yard.

One real LoRA run of a tiny BERT whose base sits inside the yard and has a 2-label
head, trained on 6 topics: the case where PEFT, given only the adapter folder, builds
the base with the wrong head size, and where an absolute base path breaks on a move.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from huggingface_hub import ModelCard

from tuneyard.cli import main
from tuneyard.yard.index import flatten_metrics

QUICK = ("--strategy", "lora", "--epochs", "1", "--batch-size", "16", "--max-length", "32", "--quiet")
PLACEHOLDER = "[More Information Needed]"
# Appended to a card's snippet: it must not have needed tuneyard, and the head must have the 6 topics.
CHECK_PLAIN = "\nimport sys\nassert 'tuneyard' not in sys.modules\nprint(model.config.num_labels)\n"


def few_rows(source: Path, target: Path, rows: int = 48) -> Path:
    target.mkdir(parents=True)
    for split in ("train", "validation"):
        lines = (source / f"{split}.csv").read_text().splitlines(keepends=True)
        (target / f"{split}.csv").write_text("".join(lines[: rows + 1]))
    return target


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory: pytest.TempPathFactory, tiny_model, topics_data: Path) -> Path:  # type: ignore[no-untyped-def]
    """A yard holding its own base model (2 labels) and a LoRA run of it on 6 topics."""
    root = tmp_path_factory.mktemp("cards") / "yard"
    base = root / "base_models" / "tiny-bert"
    shutil.copytree(tiny_model("bert", num_labels=2), base)
    data = few_rows(topics_data, tmp_path_factory.mktemp("data") / "debian_topics")
    main(["--yard", str(root), "finetune", "--checkpoint", str(base), "--data", str(data),
          "--name", "topics", "--reset-head", *QUICK])  # fmt: skip
    return next(root.glob("**/topics"))


def snippets(card: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card.read_text(), re.S)


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "TUNEYARD_HOME"}
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True)


def yard_of(run: Path) -> Path:
    return next(folder for folder in run.parents if (folder / ".tuneyard").is_dir())


def test_best_and_last_have_real_cards_the_hub_library_parses(lora_run: Path) -> None:
    for sub in ("best", "last"):
        card_file = lora_run / sub / "README.md"
        assert PLACEHOLDER not in card_file.read_text()
        card = ModelCard.load(card_file)
        manifest = json.loads((lora_run / sub / "manifest.json").read_text())
        assert card.data.library_name == "peft"
        assert card.data.base_model == "base_models/tiny-bert"
        assert card.data.pipeline_tag == "text-classification"
        assert {"tuneyard", "sequence_classification", "lora"} <= set(card.data.tags)
        results = {result.metric_name: result.metric_value for result in card.data.eval_results}
        assert results and results == flatten_metrics(manifest["metrics"])
        assert f"# {manifest['name']}" in card.text and f"`{manifest['path']}`" in card.text
    # best/ is written from a Trainer checkpoint, whose README is PEFT's template: not linked
    checkpoints = list(lora_run.glob("checkpoint-*/README.md"))
    assert all((lora_run / "best" / "README.md").stat().st_ino != c.stat().st_ino for c in checkpoints)


def test_the_adapter_records_its_base_relative_to_the_yard(lora_run: Path) -> None:
    adapter = json.loads((lora_run / "best" / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == "base_models/tiny-bert"


def test_a_moved_yard_loads_its_adapters_with_tuneyard_and_with_peft_alone(
    lora_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tuneyard

    root = yard_of(lora_run)
    copied = tmp_path / "copy"
    shutil.copytree(root, copied)
    moved = tmp_path / "elsewhere" / "yard"
    moved.parent.mkdir()
    copied.rename(moved)  # the copy's first path is gone: nothing can lean on it
    best = moved / (lora_run / "best").relative_to(root)
    inputs = {"input_ids": torch.tensor([[101, 2000, 2001, 102]])}
    with torch.no_grad():
        expected = tuneyard.load(lora_run / "best")(**inputs).logits
        logits = tuneyard.load(best)(**inputs).logits
    assert logits.shape == (1, 6)
    torch.testing.assert_close(logits, expected)

    plain, with_tuneyard = snippets(best / "README.md")
    assert "AutoPeftModelForSequenceClassification" in plain and "tuneyard" not in plain
    ran = run_python(plain + CHECK_PLAIN, moved)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["PeftModelForSequenceClassification", "6"]
    monkeypatch.chdir(moved)
    scope: dict[str, object] = {}
    exec(with_tuneyard, scope)  # the card's other snippet, as written
    assert type(scope["model"]).__name__ == "PeftModelForSequenceClassification"


def test_an_adapter_copied_out_of_its_yard_finds_its_base_by_the_absolute_path_recorded(
    lora_run: Path, tmp_path: Path
) -> None:
    import tuneyard

    root = yard_of(lora_run)
    manifest = json.loads((lora_run / "best" / "manifest.json").read_text())
    assert manifest["adapter_base"] == (root / "base_models" / "tiny-bert").resolve().as_posix()
    copied = shutil.copytree(lora_run / "best", tmp_path / "adapter")  # no yard around it
    assert json.loads((copied / "adapter_config.json").read_text())["base_model_name_or_path"] == (
        "base_models/tiny-bert"
    )
    inputs = {"input_ids": torch.tensor([[101, 2000, 2001, 102]])}
    with torch.no_grad():
        expected = tuneyard.load(lora_run / "best")(**inputs).logits
        logits = tuneyard.load(copied)(**inputs).logits
    torch.testing.assert_close(logits, expected)


def test_a_merged_model_and_its_export_have_cards_whose_snippets_run(  # type: ignore[no-untyped-def]
    lora_run: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = yard_of(lora_run)
    merged = cli("--yard", root, "merge", "--checkpoint", lora_run)
    assert merged.exit_code == 0, merged.stderr
    folder = Path(merged.stdout.strip().splitlines()[-1].removeprefix("saved "))
    exported = cli("--yard", root, "export", "--checkpoint", folder, "--format", "safetensors")
    assert exported.exit_code == 0, exported.stderr
    export = next(root.glob("exports/*"))
    monkeypatch.chdir(root)
    for model_folder in (folder, export):
        card = ModelCard.load(model_folder / "README.md")
        assert PLACEHOLDER not in card.text and card.data.library_name == "transformers"
        plain = snippets(model_folder / "README.md")[0]
        assert "from transformers import BertForSequenceClassification" in plain and "tuneyard" not in plain
        scope: dict[str, Any] = {}
        exec(plain, scope)  # in this process: plain transformers, and an interpreter start is slow
        assert type(scope["model"]).__name__ == "BertForSequenceClassification"
        assert scope["model"].config.num_labels == 6
