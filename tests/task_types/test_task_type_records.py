"""The task type: recorded in every model artifact, read back by the verbs, inferred once for old folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from topic_data import write_topic_csvs

from tuneyard.data.options import ColumnOptions
from tuneyard.errors import DataError
from tuneyard.task_types import data_loading
from tuneyard.task_types.base import DataRole, TaskType
from tuneyard.task_types.model_loading import infer_task_type, task_type_of_model

QUICK = ("--epochs", "1", "--batch-size", "16", "--max-length", "32", "-q")


def manifest(folder: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((folder / "manifest.json").read_text())


@pytest.fixture(scope="module")
def topics(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_topic_csvs(
        tmp_path_factory.mktemp("data") / "topics", ("sports", "cooking"), {"train": 32, "validation": 16}
    )


def test_a_folder_without_a_manifest_is_inferred_from_its_model_class(tmp_path, tiny_model, tiny_decoder):
    from transformers import AutoModel

    AutoModel.from_pretrained(tiny_model("bert")).save_pretrained(tmp_path / "encoder")
    assert infer_task_type(tiny_decoder("llama")) == "causal_lm"  # LlamaForCausalLM
    assert infer_task_type(tiny_model("gpt2")) == "sequence_classification"  # GPT2ForSequenceClassification
    assert infer_task_type(tmp_path / "encoder") is None  # a bare BertModel is any classifier's base


def test_every_model_artifact_records_its_task_type_and_the_verbs_read_it(cli, tmp_path, tiny_model, topics):
    yard = tmp_path / "yard"
    args = ("--checkpoint", tiny_model("bert"), "--data", topics, "--strategy", "lora", "--lora-r", "4")
    assert cli("--yard", yard, "finetune", *args, "--name", "tagged", *QUICK).exit_code == 0
    run = next(yard.glob("models/finetuned/bert/lora/tagged"))
    for folder in (run, run / "best", run / "last"):
        assert manifest(folder)["task_type"] == "sequence_classification"
    merged = cli("--yard", yard, "merge", "--checkpoint", run / "best")
    assert merged.exit_code == 0, merged.stderr
    (merged_folder,) = yard.glob("models/merged/bert/*")
    assert manifest(merged_folder)["task_type"] == "sequence_classification"
    compressed = cli("--yard", yard, "compress", "--model", merged_folder, "--rank", "4", "-q")
    assert compressed.exit_code == 0, compressed.stderr
    (compressed_folder,) = yard.glob("compressed_models/*")
    assert manifest(compressed_folder)["task_type"] == "sequence_classification"
    assert task_type_of_model(compressed_folder).name == "sequence_classification"


def test_a_bare_encoder_compressed_without_data_records_no_task_type(cli, tmp_path, tiny_model):
    from transformers import AutoModel

    AutoModel.from_pretrained(tiny_model("bert")).save_pretrained(tmp_path / "encoder")
    result = cli(
        "--yard", tmp_path / "yard", "compress", "--model", tmp_path / "encoder", "--rank", "4", "-q"
    )
    assert result.exit_code == 0, result.stderr
    (folder,) = (tmp_path / "yard").glob("compressed_models/*")
    assert manifest(folder)["task_type"] is None


def test_reindex_infers_the_task_type_of_an_older_manifest_into_the_index(cli, tmp_path, tiny_decoder):
    """A yard written before task types were recorded: reindex fills the index, not the manifest."""
    yard = tmp_path / "yard"
    result = cli("--yard", yard, "runs", "import", tiny_decoder("llama"), "-q")
    assert result.exit_code == 0, result.stderr
    imported = manifest(tiny_decoder("llama"))
    assert imported["task_type"] == "causal_lm" and "task_type" in imported["inferred"]
    older = {key: value for key, value in imported.items() if key != "task_type"}
    (tiny_decoder("llama") / "manifest.json").write_text(json.dumps(older))
    try:
        assert cli("--yard", yard, "runs", "reindex", "-q").exit_code == 0
        listed = cli("--yard", yard, "runs", "ls", "--task-type", "causal_lm", "--format", "json")
        (row,) = json.loads(listed.stdout)
        assert row["task_type"] == "causal_lm"
        other = cli("--yard", yard, "runs", "ls", "--task-type", "other", "--format", "json")
        assert json.loads(other.stdout) == []
        assert "task_type" not in manifest(tiny_decoder("llama"))
    finally:
        (tiny_decoder("llama") / "manifest.json").unlink()


class EveryTextFolder(DataRole):
    """A data role that claims any folder with a text column as strongly as classification does."""

    def recognize(self, column_names: list[str], columns: ColumnOptions) -> int:
        return 2 if columns.text_column in column_names else 0

    def load_folder(self, folder, columns, require_labels):  # type: ignore[no-untyped-def]
        raise AssertionError("a tie must be refused before any task type reads the folder")


def test_a_folder_two_task_types_read_equally_well_is_an_error_naming_task_type(monkeypatch, topics):
    from tuneyard.task_types import get_task_type

    rival = TaskType("rival", "test", EveryTextFolder(), *[None] * 3)  # type: ignore[arg-type]
    known = dict(data_loading.TASK_TYPES, rival="tests:rival")
    monkeypatch.setattr(data_loading, "TASK_TYPES", known)
    monkeypatch.setattr(
        data_loading, "get_task_type", lambda name=None: rival if name == "rival" else get_task_type(name)
    )
    with pytest.raises(DataError) as caught:
        data_loading.load_task_data(data_dir=topics)
    assert "sequence_classification, rival" in caught.value.message and "--task-type" in (
        caught.value.hint or ""
    )
    chosen = data_loading.load_task_data(
        data_dir=topics, columns=ColumnOptions(task_type="sequence_classification")
    )
    assert chosen.spec.task_type == "sequence_classification"
