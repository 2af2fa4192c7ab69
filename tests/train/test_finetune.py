"""``tuneyard finetune`` end to end on tiny models: what lands in the run folder, and where."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tuneyard.yard.root import Yard

CLASSIFICATION_COLUMNS = [
    "accuracy",
    "f1_macro",
    "f1_micro",
    "f1_weighted",
    "precision_macro",
    "recall_macro",
    "precision_weighted",
    "recall_weighted",
    "matthews_correlation",
]
QUICK = ("--epochs", "2", "--batch-size", "8", "--learning-rate", "1e-3")


def read_log(run: Path) -> list[dict[str, str]]:
    with open(run / "training_log.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


@pytest.mark.parametrize(
    ("arch", "strategy"),
    [("bert", "full"), ("roberta", "frozen"), ("modernbert", "lora"), ("gpt2", "lora"), ("llama", "full")],
)
def test_run_folder_holds_everything_promised(
    cli, evaluate_folder, tiny_model, topics, tmp_path, arch, strategy
) -> None:
    result = cli(
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        tiny_model(arch),
        "--data",
        topics,
        "--strategy",
        strategy,
        "--project",
        "demo",
        *QUICK,
    )
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip())
    assert run == tmp_path / "outputs" / "demo" / "topics" / f"{arch}_tiny_{strategy}"
    assert f"strategy {strategy}: trainable parameters" in result.stderr

    names = {path.name for path in run.iterdir()}
    assert names == {
        "manifest.json",
        "config.yaml",
        "training_log.csv",
        "trainer_state.json",
        "tensorboard",
        "best",
        "last",
        "checkpoint-1-8",
        "checkpoint-2-16",
    }
    assert list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert {"optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json"} <= {
        path.name for path in (run / "checkpoint-2-16").iterdir()
    }

    rows = read_log(run)
    columns = ["epoch", "step", "train_loss", "val_loss", *CLASSIFICATION_COLUMNS, "lr"]
    assert list(rows[0])[: len(columns) + 2] == [*columns, "cpu_rss_gib", "cpu_peak_rss_gib"]
    assert all(name.startswith("gpu_") for name in list(rows[0])[len(columns) + 2 :])  # on a CUDA device
    assert [(row["epoch"], row["step"]) for row in rows] == [("1.0", "8"), ("2.0", "16")]
    assert all(float(row["train_loss"]) > 0 and float(row["lr"]) > 0 for row in rows)
    # This process's memory as the OS counts it: at least the interpreter with torch loaded.
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    assert all(0.1 < float(row["cpu_rss_gib"]) <= float(row["cpu_peak_rss_gib"]) < memory for row in rows)

    run_manifest = manifest(run)
    assert run_manifest["status"] == "complete" and run_manifest["kind"] == "run"
    assert (run_manifest["arch"], run_manifest["strategy"], run_manifest["project"]) == (
        arch,
        strategy,
        "demo",
    )
    assert (
        run_manifest["parents"][0]["path"] == str(tiny_model(arch))
        and run_manifest["parents"][0]["role"] == "init"
    )
    best_accuracy = max(float(row["accuracy"]) for row in rows)
    assert run_manifest["metrics"]["topics"]["accuracy"] == pytest.approx(best_accuracy)
    for sub in ("best", "last"):
        model_manifest = manifest(run / sub)
        assert model_manifest["kind"] == "model" and model_manifest["status"] == "complete"
        assert model_manifest["parents"][0] == {
            "id": run_manifest["id"],
            "path": run_manifest["path"],
            "role": "run",
        }
        files = {path.name for path in (run / sub).iterdir()}
        assert {"tokenizer.json", "config.json"} <= files
        if strategy == "lora":
            assert {"adapter_config.json", "adapter_model.safetensors"} <= files
            base = json.loads((run / sub / "adapter_config.json").read_text())["base_model_name_or_path"]
            assert base == str(tiny_model(arch)) and Path(base).is_absolute()
        else:
            assert "model.safetensors" in files

    # best/ reloads (tuneyard.load; a LoRA adapter onto its base) as the model of its log row.
    accuracies = [float(row["accuracy"]) for row in rows]
    best_row = rows[accuracies.index(max(accuracies))]
    assert evaluate_folder(run / "best", topics)["loss"] == pytest.approx(
        float(best_row["val_loss"]), abs=1e-5
    )

    # last/ shares best/'s files exactly when the final evaluation was the best one.
    training = run_manifest["training"]
    shared = (run / "best" / "config.json").stat().st_ino == (run / "last" / "config.json").stat().st_ino
    assert shared == (training["best_step"] == training["step"] == 16)
    assert manifest(run / "last")["name"].endswith("/last") and training["train_samples_per_second"] > 0

    # best/ and last/ are hard links to the model files of their steps' checkpoints: weights written once.
    weights = "adapter_model.safetensors" if strategy == "lora" else "model.safetensors"
    checkpoint_at = {8: "checkpoint-1-8", 16: "checkpoint-2-16"}
    for sub, step in (("best", training["best_step"]), ("last", 16)):
        assert (run / sub / weights).stat().st_ino == (run / checkpoint_at[step] / weights).stat().st_ino
    assert not {"optimizer.pt", "rng_state.pth", "trainer_state.json"} & {
        p.name for p in (run / "best").iterdir()
    }

    with Yard.open(tmp_path).index.connection as connection:
        status = connection.execute(
            "SELECT status FROM artifacts WHERE path = ?", (run_manifest["path"],)
        ).fetchone()
    assert status == ("complete",)

    if strategy == "frozen":  # the base model's weights are exactly the parent's
        before = load_file(str(tiny_model(arch) / "model.safetensors"))
        after = load_file(str(run / "last" / "model.safetensors"))
        changed = {key for key in before if not before[key].equal(after[key])}
        assert changed and all(key.startswith("classifier.") for key in changed)


def test_best_and_last_are_the_models_of_their_log_rows(cli, evaluate_folder, tiny_model, tmp_path) -> None:
    from topic_data import write_topic_csvs

    # Validation labels the opposite of training's: the better the model fits the training
    # rows, the worse its validation loss, so the best epoch is not the last on any hardware.
    topics = write_topic_csvs(tmp_path / "topics", ("sports", "cooking"), {"train": 64, "validation": 32})
    validation = (topics / "validation.csv").read_text().splitlines()
    swapped = [validation[0]] + [
        line.rsplit(",", 1)[0] + ("," + ("cooking" if line.endswith(",sports") else "sports"))
        for line in validation[1:]
    ]
    (topics / "validation.csv").write_text("\n".join(swapped) + "\n")
    result = cli(
        "--yard", tmp_path, "finetune", "--checkpoint", tiny_model("bert"), "--data", topics,
        "--strategy", "full", "--epochs", "6", "--batch-size", "8", "--learning-rate", "5e-3",
        "--metric-for-best", "loss", "--project", "demo",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip())
    losses = [float(row["val_loss"]) for row in read_log(run)]
    best_row = losses.index(min(losses))
    assert best_row != len(losses) - 1, f"the best epoch should differ from the last: {losses}"
    assert manifest(run / "best")["metrics"]["topics"]["loss"] == pytest.approx(losses[best_row])
    assert evaluate_folder(run / "best", topics)["loss"] == pytest.approx(losses[best_row], abs=1e-5)
    assert evaluate_folder(run / "last", topics)["loss"] == pytest.approx(losses[-1], abs=1e-5)


def test_default_layout_and_name_collisions(cli, tiny_model, topics, tmp_path) -> None:
    base = (
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        tiny_model("bert"),
        "--data",
        topics,
        "--strategy",
        "frozen",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "-q",
    )
    first, second = cli(*base), cli(*base)
    expected = tmp_path / "models" / "finetuned" / "bert" / "frozen" / "tiny-bert-l2-c2"
    assert Path(first.stdout.strip()) == expected
    assert Path(second.stdout.strip()) == expected.with_name("tiny-bert-l2-c2-2")
    assert "this run is tiny-bert-l2-c2-2 instead" in second.stderr
    assert manifest(expected)["kind"] == "finetuned"

    named = cli(*base, "--name", "probe")
    assert Path(named.stdout.strip()) == expected.with_name("probe")
    custom = cli(*base, "--output-dir", tmp_path / "elsewhere" / "mine")
    assert Path(custom.stdout.strip()) == tmp_path / "elsewhere" / "mine"
    assert manifest(tmp_path / "elsewhere" / "mine")["status"] == "complete"


def test_keep_n_checkpoints_named_by_epoch_and_step(cli, tiny_model, topics, tmp_path) -> None:
    result = cli(
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        tiny_model("bert"),
        "--data",
        topics,
        "--strategy",
        "frozen",
        *QUICK,
        "--save-steps",
        "3",
        "--keep",
        "2",
        "--project",
        "p",
        "-q",
    )
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip())
    assert sorted(path.name for path in run.glob("checkpoint-*")) == ["checkpoint-2-15", "checkpoint-2-16"]
    assert [row["step"] for row in read_log(run)] == ["3", "6", "9", "12", "15", "16"]
    assert not list(run.glob(".*"))  # no staging or temporary folders left


def test_string_labels_carved_validation_and_label_names_saved(
    cli, tiny_model, three_topics, tmp_path
) -> None:
    result = cli(
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        tiny_model("bert", num_labels=3),
        "--data",
        three_topics,
        "--strategy",
        "frozen",
        "--epochs",
        "1",
        "-q",
    )
    assert result.exit_code == 0, result.stderr
    assert "has no validation split; using 10% of train (seed 42) as validation" in result.stderr
    config = json.loads((Path(result.stdout.strip()) / "best" / "config.json").read_text())
    assert config["id2label"] == {"0": "cooking", "1": "sports", "2": "travel"}


def test_model_naming_from_checkpoint_names(minilm, tmp_path) -> None:
    from tuneyard.models.checkpoint import describe_checkpoint

    assert describe_checkpoint(str(minilm)).name_parts() == (
        "minilm",
        "l6",
    )  # folder "model": read the config
    for name, parts in [
        ("all-MiniLM-L6-v2", ("minilm", "l6")),
        ("bert-base-uncased-SST-2_fwsvd_r64", ("bert", "base")),
        ("whisper-small", ("whisper", "small")),
        ("gpt2", ("gpt2", "l6")),
    ]:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"model_type": "bert", "num_hidden_layers": 6}))
        assert describe_checkpoint(str(folder)).name_parts() == parts


@pytest.mark.parametrize(
    ("layers", "name"),
    [("0,1,2", "minilm_l6_lora_012"), ("0-2", "minilm_l6_lora_0-2"), (None, "minilm_l6_lora")],
)
def test_project_run_names_carry_the_lora_layers(minilm, tmp_path, layers, name) -> None:
    from tuneyard.models.checkpoint import describe_checkpoint
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.plan import run_target

    options = FinetuneOptions(
        checkpoint=str(minilm),
        data=str(tmp_path / "my_topics"),
        strategy="lora",
        lora={"layers": layers},
        project="demo",
    )
    kind, target = run_target(options, describe_checkpoint(str(minilm)), "lora", Yard.open(tmp_path))
    assert (kind, target) == ("run", tmp_path / "outputs" / "demo" / "my_topics" / name)


def test_a_run_template_can_file_runs_by_arch_and_date(minilm, tmp_path) -> None:
    from datetime import UTC, datetime

    from tuneyard.models.checkpoint import describe_checkpoint
    from tuneyard.train.options import FinetuneOptions
    from tuneyard.train.plan import run_target

    (tmp_path / "tuneyard.yaml").write_text("layout:\n  run: outputs/{project}/{arch}/{name}_{date}\n")
    options = FinetuneOptions(checkpoint=str(minilm), data=str(tmp_path / "t"), strategy="full", project="p")
    today = datetime.now(UTC).strftime("%Y%m%d")
    kind, target = run_target(options, describe_checkpoint(str(minilm)), "full", Yard.open(tmp_path))
    assert (kind, target) == ("run", tmp_path / "outputs" / "p" / "bert" / f"minilm_l6_full_{today}")


def test_lora_layers_flags_land_in_the_saved_adapter_config(cli, tiny_model, topics, tmp_path) -> None:
    checkpoint = tiny_model("gpt2", layers=4)
    result = cli(
        "--yard",
        tmp_path,
        "finetune",
        "--checkpoint",
        checkpoint,
        "--data",
        topics,
        "--strategy",
        "lora",
        "--lora-layers",
        "1-2",
        "--lora-r",
        "4",
        "--lora-alpha",
        "8",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "-q",
    )
    assert result.exit_code == 0, result.stderr
    best = Path(result.stdout.strip()) / "best"
    config = json.loads((best / "adapter_config.json").read_text())
    assert config["layers_to_transform"] == [1, 2] and config["layers_pattern"] == "h"
    assert sorted(config["target_modules"]) == ["attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"]
    assert (config["r"], config["lora_alpha"]) == (4, 8)
    assert "score" in config["modules_to_save"]
    assert config["base_model_name_or_path"] == str(checkpoint)

    # the saved adapter holds LoRA weights on layers 1 and 2 only, and the trained head
    tensors = load_file(str(best / "adapter_model.safetensors"))
    adapted = {key.split(".h.")[1].split(".")[0] for key in tensors if "lora_" in key}
    assert adapted == {"1", "2"}
    assert any(key.endswith("score.weight") for key in tensors)
