"""tuneyard.load: compressed folders, plain HF folders, PEFT adapters, run folders, and refusals."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

import tuneyard
from tuneyard.compress.compressor import compress_model
from tuneyard.compress.options import CompressOptions
from tuneyard.errors import ModelError
from tuneyard.yard.root import Yard

TEXTS = ["a fine film", "dull plot and a cold ending"]


def _logits(model, folder):  # type: ignore[no-untyped-def]
    tokenizer = tuneyard.load_tokenizer(folder)
    with torch.no_grad():
        return model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits


@pytest.fixture
def compressed(tmp_path, tiny_model):  # type: ignore[no-untyped-def]
    return compress_model(CompressOptions(model=str(tiny_model("bert")), rank="4"), Yard.open(tmp_path)).path


def test_plain_classifier_folder_loads_as_its_class_in_eval_mode(tiny_model):
    model = tuneyard.load(tiny_model("roberta"))
    assert type(model).__name__ == "RobertaForSequenceClassification" and not model.training


def test_bare_encoder_folder_loads_as_the_encoder_class(tmp_path, tiny_model):
    from transformers import AutoModel

    AutoModel.from_pretrained(tiny_model("bert")).save_pretrained(tmp_path / "encoder")
    assert type(tuneyard.load(tmp_path / "encoder")).__name__ == "BertModel"


def test_run_folder_loads_its_best_subfolder(tmp_path, tiny_model):
    shutil.copytree(tiny_model("gpt2"), tmp_path / "run" / "best")
    model = tuneyard.load(tmp_path / "run")
    assert type(model).__name__ == "GPT2ForSequenceClassification"
    assert tuneyard.load_tokenizer(tmp_path / "run") is not None


def test_missing_compression_info_is_refused_not_loaded_as_dense(compressed):
    (compressed / "compression_info.json").unlink()
    with pytest.raises(ModelError, match="low-rank factors but no compression_info.json"):
        tuneyard.load(compressed)


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", "is not readable JSON"), ('{"arch": "bert"}', "field 'model_type' field required")],
)
def test_corrupt_compression_info_is_a_clear_error(compressed, content, message):
    (compressed / "compression_info.json").write_text(content)
    with pytest.raises(ModelError, match=message):
        tuneyard.load(compressed)


def test_ranks_that_do_not_match_the_tensors_are_refused(compressed):
    info = json.loads((compressed / "compression_info.json").read_text())
    first = next(iter(info["layers"]))
    info["layers"][first]["rank"] = 5
    (compressed / "compression_info.json").write_text(json.dumps(info))
    with pytest.raises(ModelError, match="does not match the layers"):
        tuneyard.load(compressed)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):
        tuneyard.load(tmp_path / "missing")
    with pytest.raises(ModelError, match="is not a model folder"):
        tuneyard.load(tmp_path)


@pytest.mark.parametrize("base_kind", ["plain", "compressed"])
def test_lora_adapter_folder_loads_on_its_base(tmp_path, tiny_model, compressed, base_kind):
    from peft import LoraConfig, TaskType, get_peft_model

    base_dir = tiny_model("bert") if base_kind == "plain" else compressed
    base = tuneyard.load(base_dir)
    targets = ["query", "value"] if base_kind == "plain" else ["pooler.dense"]
    peft_model = get_peft_model(base, LoraConfig(task_type=TaskType.SEQ_CLS, r=2, target_modules=targets))
    with torch.no_grad():  # make the adapter do something
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.normal_()
    peft_model.eval()
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str(base_dir)

    loaded = tuneyard.load(adapter)
    assert type(loaded).__name__.startswith("PeftModel") and not loaded.training
    assert torch.equal(_logits(loaded, adapter), _logits(peft_model, base_dir))
    assert not torch.equal(_logits(loaded, adapter), _logits(tuneyard.load(base_dir), base_dir))


@pytest.mark.parametrize("with_config", [False, True])
def test_lora_adapter_on_a_headless_encoder_gets_a_head_of_the_trained_size(
    tmp_path, tiny_model, with_config
):
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    encoder = tmp_path / "encoder"
    AutoModel.from_pretrained(tiny_model("bert")).save_pretrained(encoder)
    AutoTokenizer.from_pretrained(tiny_model("bert")).save_pretrained(encoder)
    labels = {0: "admin", 1: "games", 2: "science"}
    base = AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=3, id2label=labels)
    peft_model = get_peft_model(
        base, LoraConfig(task_type=TaskType.SEQ_CLS, r=2, target_modules=["query"])
    ).eval()
    adapter = tmp_path / "adapter"
    peft_model.save_pretrained(adapter)
    if with_config:
        base.config.save_pretrained(adapter)

    loaded = tuneyard.load(adapter)
    assert loaded.config.num_labels == 3
    assert torch.equal(_logits(loaded, adapter), _logits(peft_model, encoder))
    if with_config:
        assert loaded.config.id2label == labels


def test_hub_ids_are_told_apart_from_local_paths(tmp_path):
    from tuneyard.models.loading import is_hub_id

    assert is_hub_id("textattack/bert-base-uncased-SST-2")
    assert not is_hub_id(str(tmp_path))
    assert not is_hub_id("./compressed_models/x")
    assert not is_hub_id("a/b/c")


def test_missing_relative_path_that_looks_like_a_hub_id_says_both(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="no local folder of that name either"):
        tuneyard.load("compressed_models/not-there")


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_compressed_model_saved_by_save_pretrained_plus_info_loads_back(tmp_path, tiny_model, arch):
    """What fine-tuning does: the Trainer's save_pretrained, then compression_info.json copied next to it."""
    result = compress_model(CompressOptions(model=str(tiny_model(arch)), rank="4"), Yard.open(tmp_path))
    saved = tmp_path / "finetuned" / "best"
    result.model.save_pretrained(saved)
    shutil.copy(result.path / "compression_info.json", saved)
    reloaded = tuneyard.load(saved.parent)
    ids = torch.randint(0, 1000, (2, 8))
    with torch.no_grad():
        assert torch.equal(reloaded(input_ids=ids).logits, result.model(input_ids=ids).logits)
