"""Metadata inference for folders without a manifest: config.json first, then whole path tokens."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneyard.yard import infer_metadata
from tuneyard.yard.metadata_guess import arch_from_path, method_from_path, rank_from_path


@pytest.mark.parametrize(
    ("path", "arch"),
    [
        ("compressed_models/modernbert-base_whiten_r64", "modernbert"),
        ("compressed_models/roberta-base_standard_r40", "roberta"),
        ("compressed_models/bert-base-uncased-SST-2_fwsvd_r64", "bert"),
        ("models/ModernBERT-large", "modernbert"),
        ("ckpt/llama_7b", "llama"),
        ("out/gpt2-medium", "gpt2"),
        ("outputs/clic/recanvo/whisper_base_lora_012/checkpoint-7752", "whisper"),
        ("wav2vec2_base_frozen", "wav2vec2"),
        ("hubert-large", "hubert"),
        ("smolvlm-256m", "smolvlm"),
        ("idefics3-8b", "smolvlm"),
        ("distilbert-base", "unknown"),  # a different family, not "bert" by substring
        ("deberta-v3", "unknown"),
        ("my_model", "unknown"),
    ],
)
def test_arch_from_path_tokens(path: str, arch: str) -> None:
    assert arch_from_path(path) == arch


@pytest.mark.parametrize(
    ("path", "method"),
    [
        ("bert_fwsvd_r64", "fwsvd"),
        ("bert_fw_r64", "fwsvd"),
        ("bert-drawer-r64", "unknown"),  # one whole token, matched by no rule (no substring matching)
        ("bert.whiten.r8", "whiten"),
        ("roberta/drone/r8", "whiten"),
        ("bert_adasvd_r64", "adasvd"),  # not "asvd"
        ("bert_ada_r64", "adasvd"),
        ("bert_asvd_r64", "asvd"),
        ("roberta-base_standard_r40", "standard"),
        ("standardized-bert", "unknown"),
        ("lora_adapter", "unknown"),
        ("bert_fwsvdx", "unknown"),
    ],
)
def test_method_from_whole_tokens_only(path: str, method: str) -> None:
    assert method_from_path(path) == method


def test_rank_from_an_r_token() -> None:
    assert rank_from_path("bert-base-uncased-SST-2_fwsvd_r64") == 64
    assert rank_from_path("roberta_r8/ckpt_r16") == 16
    assert rank_from_path("roberta-base") is None
    assert rank_from_path("run_rx") is None


def test_config_model_type_wins_over_the_path(tmp_path: Path) -> None:
    folder = tmp_path / "bert_fwsvd_r32"  # the path says bert...
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "roberta"}))  # ...the config says roberta
    values, inferred = infer_metadata(folder)
    assert values == {"arch": "roberta", "method": "fwsvd", "rank": 32}
    assert inferred == ["arch", "method", "rank"]


def test_compression_info_is_read_not_inferred(tmp_path: Path) -> None:
    folder = tmp_path / "whatever_name"
    folder.mkdir()
    (folder / "compression_info.json").write_text(
        json.dumps({"arch": "bert", "method": "asvd", "rank": 48, "task": "mnli", "base_model": "x"})
    )
    assert infer_metadata(folder) == ({"arch": "bert", "method": "asvd", "task": "mnli", "rank": 48}, [])


def test_flashsvd_info_names_its_method_short_and_its_ranks_by_kind(tmp_path: Path) -> None:
    folder = tmp_path / "whatever_name"
    folder.mkdir()
    (folder / "compression_info.json").write_text(  # as FlashSVD 0.1.0's schema 2 writes it
        json.dumps(
            {
                "method": "fw",
                "ranks": {"attn": 40, "ffn": 240, "wo": 240},
                "base_model": "bert-base-uncased",
                "task": "sst2",
                "schema_version": 2,
                "arch": "bert",
                "block_impl": "BertFlashFWSVDBlock",
            }
        )
    )
    assert infer_metadata(folder) == ({"arch": "bert", "method": "fwsvd", "task": "sst2", "rank": 40}, [])


def test_only_the_path_inside_the_yard_counts(tmp_path: Path) -> None:
    # An unrelated ancestor ("fw_experiments") must not decide the method inside a yard.
    root = tmp_path / "fw_experiments" / "yard"
    folder = root / "checkpoints" / "gpt2-small"
    folder.mkdir(parents=True)
    values, _ = infer_metadata(folder, relative_to=root)
    assert values == {"arch": "gpt2", "method": "unknown"}
    assert infer_metadata(folder)[0]["method"] == "fwsvd"


def test_unreadable_config_falls_back_to_the_path(tmp_path: Path) -> None:
    folder = tmp_path / "llama-tiny"
    folder.mkdir()
    (folder / "config.json").write_text("{broken")
    assert infer_metadata(folder, relative_to=tmp_path)[0]["arch"] == "llama"
