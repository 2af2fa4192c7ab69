"""Fixtures for model-input tests: real GGUF files written with the ``gguf`` package, an in-process CLI."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import pytest

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


def write_tiny_llama_gguf(path: Path, seed: int = 0, weights: str = "Q8_0") -> Path:
    """A 2-layer LLaMA (hidden 32) with a byte-level BPE vocabulary and a chat template, as
    llama.cpp lays it out: its matrices in ``weights`` (Q8_0, F16 or BF16), norms in F32."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter, LlamaFileType, TokenType
    from gguf.quants import quantize
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    hidden, ffn, layers, heads = 32, 64, 2, 2
    merges = ["Ġ t", "h e", "Ġt he"]
    tokens = [*bytes_to_unicode().values(), "Ġt", "he", "Ġthe", *SPECIAL_TOKENS]
    types = [TokenType.NORMAL] * (len(tokens) - len(SPECIAL_TOKENS)) + [TokenType.CONTROL] * len(
        SPECIAL_TOKENS
    )
    rng = np.random.default_rng(seed)

    writer = GGUFWriter(path, "llama")  # writes general.architecture = llama
    writer.add_name("tiny llama")
    writer.add_file_type(LlamaFileType[f"MOSTLY_{weights}"])
    writer.add_context_length(64)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(heads)
    writer.add_head_count_kv(heads)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokens.index("<|im_start|>"))
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_chat_template(CHAT_TEMPLATE)

    def matrix(name: str, rows: int, columns: int) -> None:
        values = rng.normal(0, 0.1, size=(rows, columns)).astype(np.float32)
        kind = GGMLQuantizationType[weights]
        writer.add_tensor(name, quantize(values, kind), raw_dtype=kind)

    def norm(name: str) -> None:
        writer.add_tensor(name, np.ones(hidden, dtype=np.float32))

    matrix("token_embd.weight", len(tokens), hidden)
    for layer in range(layers):
        norm(f"blk.{layer}.attn_norm.weight")
        for part in ("attn_q", "attn_k", "attn_v", "attn_output"):
            matrix(f"blk.{layer}.{part}.weight", hidden, hidden)
        norm(f"blk.{layer}.ffn_norm.weight")
        matrix(f"blk.{layer}.ffn_gate.weight", ffn, hidden)
        matrix(f"blk.{layer}.ffn_up.weight", ffn, hidden)
        matrix(f"blk.{layer}.ffn_down.weight", hidden, ffn)
    norm("output_norm.weight")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def write_modelless_gguf(path: Path, architecture: bool = False) -> Path:
    """A structurally valid GGUF with metadata only: no architecture key (or one, but no tensors)."""
    from gguf import GGUFWriter

    # The writer records its architecture at once; an empty one is left out of the file.
    writer = GGUFWriter(path, "llama" if architecture else "")
    writer.add_name("vocabulary only")
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(["a", "b", "c"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real (tiny) quantized LLaMA GGUF file, shared by the session: copy it before changing it."""
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama-q8_0.gguf")


@pytest.fixture
def gguf_files() -> SimpleNamespace:
    """The writers above: ``gguf_files.tiny_llama(path, seed)``, ``.modelless(path, architecture)``."""
    return SimpleNamespace(tiny_llama=write_tiny_llama_gguf, modelless=write_modelless_gguf)


@pytest.fixture
def two_labels(tmp_path: Path) -> Path:
    """A data folder with train and validation CSVs of two string labels."""
    folder = tmp_path / "two_labels"
    folder.mkdir()
    for split, rows in (("train", 16), ("validation", 8)):
        with open(folder / f"{split}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["text", "label"])
            for index in range(rows):
                writer.writerow(["the best film" if index % 2 else "a dull plot", ("neg", "pos")[index % 2]])
    return folder
