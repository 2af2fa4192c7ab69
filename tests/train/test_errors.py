"""Bad requests end with ``error: ...``, exit code 2 and no run folder that looks like a result."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest


def yard_artifacts(root: Path) -> list[Path]:
    return [path for top in ("outputs", "models") for path in (root / top).rglob("manifest.json")]


@pytest.fixture
def finetune(cli, tiny_model, topics, tmp_path):  # type: ignore[no-untyped-def]
    def run(*args: object, checkpoint: object = None, data: object = None):  # type: ignore[no-untyped-def]
        source = ("--data", data or topics) if not any(a == "--task" for a in args) else ()
        return cli(
            "--yard",
            tmp_path,
            "finetune",
            "--checkpoint",
            checkpoint or tiny_model("bert"),
            *source,
            "--epochs",
            "1",
            *args,
        )

    return run


def assert_user_error(result, *fragments: str) -> None:  # type: ignore[no-untyped-def]
    assert result.exit_code == 2, result.stderr
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in result.stderr


def test_missing_column(finetune, tmp_path) -> None:
    result = finetune("--text-column", "sentence")
    assert_user_error(result, "has no column 'sentence'", "Its columns are: text, label")
    assert not yard_artifacts(tmp_path)


def test_unknown_task(finetune, tmp_path) -> None:
    assert_user_error(finetune("--task", "sst3"), "unknown task 'sst3'", "Known tasks: cola, mnli")
    assert not yard_artifacts(tmp_path)


def test_label_count_mismatch(finetune, three_topics, tmp_path) -> None:
    result = finetune(data=three_topics)
    assert_user_error(
        result,
        "has a classifier head with 2 labels, but task 'three_topics' has 3",
        "cooking, sports, travel",
        "--reset-head",
    )
    assert not yard_artifacts(tmp_path)


def test_reset_head_replaces_a_head_of_the_wrong_size(finetune, three_topics, tiny_model) -> None:
    import csv
    import json

    from safetensors.torch import load_file

    result = finetune("--reset-head", "--strategy", "frozen", "-q", data=three_topics)
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip())
    config = json.loads((run / "best" / "config.json").read_text())
    assert config["id2label"] == {"0": "cooking", "1": "sports", "2": "travel"}
    assert config["label2id"] == {"cooking": 0, "sports": 1, "travel": 2}
    before = load_file(str(tiny_model("bert") / "model.safetensors"))
    after = load_file(str(run / "best" / "model.safetensors"))
    assert before["classifier.weight"].shape == (2, 32)
    assert after["classifier.weight"].shape == (3, 32) and after["classifier.bias"].shape == (3,)
    # frozen: only the new head trained; the encoder is the parent's, tensor for tensor
    assert set(before) == set(after)
    assert all(before[key].equal(after[key]) for key in before if not key.startswith("classifier."))

    with open(run / "training_log.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["epoch"] for row in rows] == ["1.0"] and float(rows[0]["train_loss"]) > 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert manifest["metrics"]["three_topics"]["accuracy"] == pytest.approx(float(rows[0]["accuracy"]))


def test_checkpoint_that_is_not_a_model(finetune, tmp_path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "README.md").write_text("not a model")
    assert_user_error(
        finetune(checkpoint=folder), f"checkpoint {folder} is not a model folder: it has no config.json"
    )
    assert_user_error(finetune(checkpoint=tmp_path / "missing"), "does not exist")
    assert not yard_artifacts(tmp_path)


def test_lora_layer_the_model_does_not_have(finetune, tmp_path) -> None:
    result = finetune("--strategy", "lora", "--lora-layers", "40")
    assert_user_error(
        result, "--lora-layers '40' names layer 40, but the model has 2 layers", "Use layers 0-1."
    )
    assert not yard_artifacts(tmp_path)


def test_metric_for_best_must_be_a_task_metric(finetune) -> None:
    assert_user_error(
        finetune("--metric-for-best", "bleu"),
        "--metric-for-best 'bleu' is not a metric",
        "accuracy",
        "f1_macro",
    )


def test_freeze_factors_needs_a_compressed_model(finetune) -> None:
    assert_user_error(finetune("--freeze-factors"), "--freeze-factors applies to --strategy lowrank")


def test_task_and_data_together(finetune, topics) -> None:
    assert_user_error(
        finetune("--task", "sst2", "--data", topics), "give exactly one of --task NAME or --data DIR"
    )


def test_resume_of_a_complete_run_is_refused(cli, finetune, tmp_path) -> None:
    done = finetune("--strategy", "frozen", "-q")
    assert done.exit_code == 0, done.stderr
    result = cli("--yard", tmp_path, "finetune", "--resume", done.stdout.strip())
    assert_user_error(result, "is complete; there is nothing to resume")


def test_resume_of_a_folder_that_is_no_run(cli, tmp_path) -> None:
    assert_user_error(cli("finetune", "--resume", tmp_path / "nothing"), "no such run folder")


def test_trainer_fields_tuneyard_manages_cannot_be_set(finetune, tmp_path) -> None:
    assert_user_error(
        finetune("--set", "trainer.output_dir=/tmp/x"), "trainer.output_dir is managed by tuneyard"
    )
    assert_user_error(finetune("--set", "trainer.no_such_field=1"), "the Trainer refused these settings")
    assert not yard_artifacts(tmp_path)


def test_fsdp_on_cpu_is_refused_rather_than_run_as_ddp(finetune, tmp_path) -> None:
    # accelerate drops FSDP on CPU processes without a word; tuneyard says so before anything runs.
    result = finetune("--set", "trainer.fsdp=full_shard auto_wrap")
    assert_user_error(result, "trainer.fsdp needs GPUs", "torchrun then runs DDP")
    assert not yard_artifacts(tmp_path)


def test_trainer_extras_pass_through(finetune) -> None:
    result = finetune("--strategy", "frozen", "--set", "trainer.lr_scheduler_type=constant", "-q")
    assert result.exit_code == 0, result.stderr
    with (Path(result.stdout.strip()) / "training_log.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["lr"] for row in rows] == ["0.001"] * len(rows)  # frozen's default rate, held constant
