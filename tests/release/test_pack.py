"""``tuneyard release pack``: a release as a Hugging Face repository, taken by another yard and by PEFT alone.

The runs of :func:`runs_yard` are LoRA adapters of a tiny BERT kept outside the yard,
so a pack must carry that base to load anywhere else.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import torch
from huggingface_hub import ModelCard

import tuneyard

INPUTS = {"input_ids": torch.tensor([[101, 2000, 2001, 102]])}


def release_and_pack(cli, yard, out: Path, *args: object) -> Path:  # type: ignore[no-untyped-def]
    released = cli("release", yard.first, "--name", "topics", "--notes", "First topics model.")
    assert released.exit_code == 0, released.stderr
    packed = cli("release", "pack", "topics@1.0.0", "-o", out, *args)
    assert packed.exit_code == 0, packed.stderr
    assert packed.stdout.strip() == str(out)
    return out


def logits(model_folder: Path) -> torch.Tensor:
    with torch.no_grad():
        return tuneyard.load(model_folder)(**INPUTS).logits


def test_a_packed_release_unpacks_into_another_yard_with_runs_import_and_loads_there(
    cli,
    yard,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    archive = release_and_pack(cli, yard, tmp_path / "topics.tar")
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"topics-1.0.0/adapter_config.json", "topics-1.0.0/adapter_model.safetensors",
            "topics-1.0.0/config.json", "topics-1.0.0/tokenizer.json", "topics-1.0.0/README.md",
            "topics-1.0.0/base/model.safetensors"} <= names  # fmt: skip
    assert "topics-1.0.0/manifest.json" not in names

    other = tmp_path / "other-yard"
    imported = cli("--yard", other, "runs", "import", archive)
    assert imported.exit_code == 0, imported.stderr
    folder = next(other.glob("models/imported/*/topics-1.0.0"))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["task_type"] == "sequence_classification"
    listed = cli("--yard", other, "runs", "ls", "--format", "json")
    assert [row["path"] for row in json.loads(listed.stdout)] == [manifest["path"]]
    torch.testing.assert_close(logits(folder), logits(yard.first))


def test_the_packed_adapter_loads_with_peft_alone_and_its_card_parses(cli, yard, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = release_and_pack(cli, yard, tmp_path / "topics")
    card = ModelCard.load(folder / "README.md")
    assert card.data.library_name == "peft" and "[More Information Needed]" not in card.text
    assert card.text.lstrip().startswith("# topics@1.0.0\n\nFirst topics model.")
    assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "base"
    plain = re.findall(r"```python\n(.*?)```", card.text, re.S)[0]
    check = "\nimport sys\nassert 'tuneyard' not in sys.modules\nprint(model.config.num_labels)\n"
    env = {key: value for key, value in os.environ.items() if key != "TUNEYARD_HOME"}
    ran = subprocess.run(
        [sys.executable, "-c", plain + check], cwd=folder, env=env, capture_output=True, text=True
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["PeftModelForSequenceClassification", "6"]


def test_a_pack_never_replaces_its_output_without_force(cli, yard, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "packs" / "topics"
    out.mkdir(parents=True)
    (out / "mine.txt").write_text("a user's file")
    cli("release", yard.first, "--name", "topics", "--notes", "x")
    refused = cli("release", "pack", "topics@1.0.0", "-o", out)
    assert refused.exit_code == 2
    assert f"error: {out} exists" in refused.stderr and "--force" in refused.stderr
    assert [path.name for path in out.iterdir()] == ["mine.txt"]
    assert [path.name for path in out.parent.iterdir()] == ["topics"]  # no staging folder left
    replaced = cli("release", "pack", "topics@1.0.0", "-o", out, "--force")
    assert replaced.exit_code == 0, replaced.stderr
    assert not (out / "mine.txt").exists() and (out / "adapter_model.safetensors").is_file()
    assert [path.name for path in out.parent.iterdir()] == ["topics"]
