"""``tuneyard compress`` end to end: the folder, the table, the -N suffix, and every refusal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

import tuneyard
from tuneyard.cli import main


def _cli(capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
        raise SystemExit(0)
    captured = capsys.readouterr()
    return int(exit_info.value.code or 0), captured.out, captured.err


def _nothing_written(yard: Path) -> bool:
    folder = yard / "compressed_models"
    return not folder.exists() or not any(folder.iterdir())


def test_cli_writes_a_complete_folder_and_prints_the_table(tmp_path, capsys, tiny_model, sentiment_data):
    model = tiny_model("bert")
    request = (
        "--yard",
        tmp_path,
        "compress",
        "--model",
        model,
        "--method",
        "whiten",
        "--rank",
        "8",
        "--data",
        sentiment_data,
        "--calib-samples",
        "40",
        "--quiet",
    )
    code, out, err = _cli(capsys, *map(str, request))
    assert code == 0, err
    folder = tmp_path / "compressed_models" / "tiny-bert-l2-c2_whiten_r8"
    for name in (
        "model.safetensors",
        "config.json",
        "tokenizer.json",
        "compression_info.json",
        "manifest.json",
    ):
        assert (folder / name).is_file(), name
    assert not list(folder.glob("*.bin")) and not list(folder.glob("*.pt"))
    assert "layers compressed" in out and "12 of 12" in out and "params before" in out and "time" in out
    assert f"saved {folder}" in out

    manifest = json.loads((folder / "manifest.json").read_text())
    info = json.loads((folder / "compression_info.json").read_text())
    assert manifest["kind"] == "compressed" and manifest["status"] == "complete"
    assert manifest["method"] == "whiten" and manifest["rank"] == 8 and manifest["arch"] == "bert"
    assert manifest["dataset"] == sentiment_data.name  # named as finetune names it, not a machine path
    assert manifest["parents"][0]["path"] == str(model) and manifest["parents"][0]["role"] == "base"
    assert manifest["metrics"]["params_after"] == info["params"]["total_after"]
    assert info["calibration"] == {
        "source": str(sentiment_data),
        "split": "train",
        "samples": 40,
        "max_length": 128,
        "seed": 0,
        "labelled": True,
    }
    assert info["base_model"] == str(model) and info["tuneyard_version"] == tuneyard.__version__
    # its card: parsed by the Hub's library; transformers cannot build low-rank layers, so tuneyard loads it
    card = ModelCard.load(folder / "README.md")
    assert card.data.base_model == str(model)
    assert card.data.tags[:2] == ["tuneyard", "sequence_classification"]
    assert "[More Information Needed]" not in card.text and "from transformers" not in card.text
    assert f'tuneyard.load("{manifest["path"]}")' in card.text

    # Same request again: a new folder with -2, and the CLI says so.
    code, out, err = _cli(capsys, *map(str, request))
    assert code == 0
    assert (tmp_path / "compressed_models" / "tiny-bert-l2-c2_whiten_r8-2" / "model.safetensors").is_file()
    assert "tiny-bert-l2-c2_whiten_r8-2" in err and "exists" in err


def test_compressed_folder_loads_without_the_base_model(tmp_path, capsys, tiny_model):
    import shutil

    base = tmp_path / "base-copy"
    shutil.copytree(tiny_model("llama"), base)
    code, _, err = _cli(
        capsys, "--yard", str(tmp_path), "compress", "--model", str(base), "--rank", "5", "-q"
    )
    assert code == 0, err
    shutil.rmtree(base)
    model = tuneyard.load(tmp_path / "compressed_models" / "base-copy_standard_r5")
    tokenizer = tuneyard.load_tokenizer(tmp_path / "compressed_models" / "base-copy_standard_r5")
    logits = model(**tokenizer(["a short test"], return_tensors="pt")).logits
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--method", "svdx", "--rank", "4"], "unknown compression method 'svdx'"),
        (["--method", "svdx", "--rank", "4"], "Supported methods: standard, fwsvd, whiten, asvd, adasvd"),
        (["--rank", "0"], "--rank 0 is below 1"),
        (
            ["--rank", "33"],
            "larger than the smallest side of bert.encoder.layer.0.attention.self.query (32 x 32)",
        ),
        (["--rank", "4", "--ratio", "0.5"], "exactly one of --rank"),
        (["--ratio", "1.5"], "--ratio 1.5 is not between 0 and 1"),
        (["--method", "whiten", "--rank", "4"], "needs calibration data"),
        (["--method", "adasvd", "--ratio", "0.5"], "needs calibration data"),
    ],
)
def test_bad_requests_exit_2_and_write_nothing(tmp_path, capsys, tiny_model, args, message):
    code, _, err = _cli(
        capsys, "--yard", str(tmp_path), "compress", "--model", str(tiny_model("bert")), *args
    )
    assert code == 2
    assert message in " ".join(err.split())
    assert "Traceback" not in err
    assert _nothing_written(tmp_path)


@pytest.mark.parametrize("model", ["no-such-org/no-such-model", "a-folder-that-is-not-there"])
def test_a_model_that_cannot_be_found_is_a_user_error(tmp_path, capsys, model):
    """Offline (as in CI) or a typo: no transformers traceback, exit 2, nothing written."""
    code, _, err = _cli(
        capsys, "--yard", str(tmp_path), "compress", "--model", model, "--method", "standard", "--rank", "4"
    )
    assert code == 2, err
    assert f"{model!r} is neither a local model folder nor a loadable hub model" in " ".join(err.split())
    assert "Traceback" not in err
    assert _nothing_written(tmp_path)


def test_missing_data_folder_and_unlabelled_data_for_fwsvd(tmp_path, capsys, tiny_model, unlabelled_data):
    model = str(tiny_model("bert"))
    code, _, err = _cli(
        capsys,
        "--yard",
        str(tmp_path),
        "compress",
        "--model",
        model,
        "--method",
        "asvd",
        "--rank",
        "4",
        "--data",
        str(tmp_path / "nowhere"),
    )
    assert code == 2 and "does not exist" in err
    code, _, err = _cli(
        capsys,
        "--yard",
        str(tmp_path),
        "compress",
        "--model",
        model,
        "--method",
        "fwsvd",
        "--rank",
        "4",
        "--data",
        str(unlabelled_data),
    )
    assert code == 2 and "needs labelled calibration data" in " ".join(err.split())
    # The same unlabelled data is fine for a method that reads only activations.
    code, _, err = _cli(
        capsys,
        "--yard",
        str(tmp_path),
        "compress",
        "--model",
        model,
        "--method",
        "asvd",
        "--rank",
        "4",
        "--data",
        str(unlabelled_data),
        "-q",
    )
    assert code == 0, err


def test_config_file_and_set_override(tmp_path, capsys, tiny_model):
    config = tmp_path / "compress.yaml"
    config.write_text(f"model: {tiny_model('gpt2')}\nmethod: standard\nrank: '12'\n")
    code, _, err = _cli(
        capsys, "--yard", str(tmp_path), "compress", "--config", str(config), "--set", "rank=6", "-q"
    )
    assert code == 0, err
    info = json.loads(
        (tmp_path / "compressed_models" / "tiny-gpt2-l2-c2_standard_r6" / "compression_info.json").read_text()
    )
    assert {layer["rank"] for layer in info["layers"].values()} == {6}


def test_help_has_an_example(capsys):
    code, out, _ = _cli(capsys, "compress", "--help")
    assert code == 0 and "Example: tuneyard compress" in out
