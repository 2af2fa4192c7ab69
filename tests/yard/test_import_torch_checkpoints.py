"""runs import of seed 004's pickled checkpoints: read with weights_only=True, weights kept as safetensors."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from tuneyard.yard import Yard, read_manifest


class SignTransformer(nn.Module):
    """A stand-in for seed 004's model class: a small real module, trained for a step."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(6, 8)
        self.gloss = nn.Linear(8, 5)


class TrainingConfig:
    """A custom class pickled into a checkpoint: torch's weights-only unpickler refuses it."""

    def __init__(self, lr: float) -> None:
        self.lr = lr


def save_checkpoint(
    folder: Path, name: str, extra: dict[str, object] | None = None
) -> dict[str, torch.Tensor]:
    """Write ``{name}_best.pt`` and ``{name}_last.pt`` as seed 004's training does; returns the weights."""
    torch.manual_seed(0)
    model = SignTransformer()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.gloss(model.embed(torch.randn(4, 6))).sum().backward()
    optimizer.step()
    folder.mkdir(parents=True, exist_ok=True)
    for which, epoch, metric in (("best", 7, 0.8125), ("last", 10, 0.8125)):
        torch.save(
            {
                "model": model.state_dict(),
                "epoch": epoch,
                "best_metric": metric,
                "optimizer": optimizer.state_dict(),
                "config": {"lr": 1e-3, "num_gloss": 5},
                **(extra or {}),
            },
            folder / f"{name}_{which}.pt",
        )
    (folder / "training_log.txt").write_text("epoch,train_loss,val_loss\n1,2.4,2.1\n")
    return {key: value.clone() for key, value in model.state_dict().items()}


def test_tensors_only_checkpoint_imports_with_epoch_metric_and_shapes(yard: Yard, tmp_path: Path) -> None:
    folder = tmp_path / "trained_models" / "transformer" / "transformer_high-acc_09-20"
    weights = save_checkpoint(folder, "SignTransformer")

    report = yard.import_paths([tmp_path / "trained_models"])

    assert report.imported == [folder] and report.problems == []
    manifest = read_manifest(folder)
    assert manifest.training is not None and manifest.training.epoch == 7
    assert manifest.metrics == {"best_metric": 0.8125}
    assert manifest.config == {"lr": 1e-3, "num_gloss": 5}
    assert manifest.tensors is not None
    assert manifest.tensors["SignTransformer_best.pt"] == {
        "embed.weight": [8, 6],
        "embed.bias": [8],
        "gloss.weight": [5, 8],
        "gloss.bias": [5],
    }
    assert set(manifest.tensors) == {"SignTransformer_best.pt", "SignTransformer_last.pt"}
    # The weights, as safetensors beside the pickles, equal to what was trained.
    filed = load_file(folder / "SignTransformer_best.safetensors")
    assert filed.keys() == weights.keys()
    for key, value in weights.items():
        assert torch.equal(filed[key], value)
    assert "SignTransformer_best.safetensors" in {entry.path for entry in manifest.files}
    row = next(iter(yard.query()))
    assert row["metrics"] == {"best_metric": 0.8125}


def test_runs_show_prints_the_epoch_and_each_checkpoints_tensors(
    cli: Callable[..., Any], yard: Yard, tmp_path: Path
) -> None:
    folder = tmp_path / "transformer_high-acc_09-20"
    save_checkpoint(folder, "SignTransformer")
    assert cli("--yard", yard.root, "runs", "import", folder).exit_code == 0

    shown = cli("--yard", yard.root, "runs", "show", "transformer_high-acc_09-20").stdout

    section = shown.split("checkpoints:\n")[1].split("files")[0].splitlines()
    assert [line.split() for line in section] == [
        ["epoch", "7"],
        ["SignTransformer_best.pt", "4", "tensors,", "101", "weights"],  # 8x6 + 8 + 5x8 + 5
        ["SignTransformer_last.pt", "4", "tensors,", "101", "weights"],
    ]


def test_checkpoint_with_a_custom_class_is_refused_without_trust(
    cli: Callable[..., Any], yard: Yard, tmp_path: Path
) -> None:
    folder = tmp_path / "iv3_gru_baseline_09-15"
    save_checkpoint(folder, "InceptionV3GRU", {"config": TrainingConfig(lr=1e-3)})
    before = sorted(path.name for path in folder.iterdir())

    result = cli("--yard", yard.root, "runs", "import", folder)

    assert result.exit_code == 2
    message = result.stderr
    assert message.startswith("error:") and "TrainingConfig" in message and "--trust" in message
    assert "Traceback" not in message
    # Nothing written: no manifest, no safetensors, nothing indexed.
    assert sorted(path.name for path in folder.iterdir()) == before
    assert list(yard.query()) == []


def test_trust_loads_a_custom_class_and_warns(cli: Callable[..., Any], yard: Yard, tmp_path: Path) -> None:
    folder = tmp_path / "iv3_gru_baseline_09-15"
    weights = save_checkpoint(folder, "InceptionV3GRU", {"config": TrainingConfig(lr=1e-3)})

    result = cli("--yard", yard.root, "runs", "import", "--trust", folder)

    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2  # best and last, each unpickled in full
    assert all("--trust" in line and "TrainingConfig" in line for line in warnings)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["training"]["epoch"] == 7 and manifest["metrics"] == {"best_metric": 0.8125}
    assert manifest["config"] == {}  # a custom object is no config tuneyard can record
    filed = load_file(folder / "InceptionV3GRU_best.safetensors")
    assert all(torch.equal(filed[key], value) for key, value in weights.items())


def test_import_never_overwrites_a_safetensors_file(yard: Yard, tmp_path: Path) -> None:
    from tuneyard.errors import ArtifactExistsError

    folder = tmp_path / "transformer_low-acc_09-15"
    save_checkpoint(folder, "SignTransformer")
    (folder / "SignTransformer_last.safetensors").write_bytes(b"the user's own file")

    with pytest.raises(ArtifactExistsError, match="does not overwrite"):
        yard.import_paths([folder])

    assert (folder / "SignTransformer_last.safetensors").read_bytes() == b"the user's own file"
    assert not (folder / "manifest.json").exists()


def test_a_checkpoint_with_tied_weights_imports_every_name(yard: Yard, tmp_path: Path) -> None:
    folder = tmp_path / "tied"
    folder.mkdir()
    model = SignTransformer()
    model.back = nn.Linear(6, 8)
    model.back.weight = model.embed.weight  # tied, as an output layer often is to its embedding
    torch.save({"model": model.state_dict(), "epoch": 1}, folder / "Tied_best.pt")

    report = yard.import_paths([folder])

    assert report.imported == [folder] and report.problems == []
    filed = load_file(folder / "Tied_best.safetensors")
    assert set(filed) == set(model.state_dict())
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(filed[name], tensor)
