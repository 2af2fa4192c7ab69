"""FlashSVD's own compressed folders (seed 000) load, evaluate and fine-tune as tuneyard's low-rank models.

The folder is made here as FlashSVD's ``flashsvd compress`` writes it: ``config.json``,
``flashsvd_state_dict.pt`` (the state dict of a model whose encoder layers are FlashSVD
blocks: ``bert.encoder.layer.{i}.block.Pq`` ...), a schema-2 ``compression_info.json``
with ranks by kind and no layer table (naming the base model, whose tokenizer is used:
FlashSVD saves none). The factors come from a tiny
BERT built from a config and factorised by SVD here, FlashSVD's way: Q, K and V per head,
the other projections whole. The reference is that BERT with each dense weight replaced
by the product of its factors.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from tiny_configs import tiny_config
from topic_data import write_topic_csvs
from transformers import AutoTokenizer

HEAD_RANK, FFN_RANK, WO_RANK = 4, 8, 8
LABELS = ("cooking", "sports")


def svd_factors(weight_t: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """FlashSVD's ``svd_low_rank``: ``W^T ~ U @ V`` with the singular values folded into ``U``."""
    u, s, vh = torch.linalg.svd(weight_t, full_matrices=False)
    return u[:, :rank] * s[:rank], vh[:rank, :]


def flashsvd_block(layer: torch.nn.Module, heads: int) -> dict[str, torch.Tensor]:
    """One encoder layer's parameters as FlashSVD's ``BertSVDBlock`` stores them."""
    attention = layer.attention.self
    block: dict[str, torch.Tensor] = {}
    for short, linear in (("q", attention.query), ("k", attention.key), ("v", attention.value)):
        width = linear.weight.shape[0]
        per_head = linear.weight.T.reshape(width, heads, width // heads)
        factors = [svd_factors(per_head[:, h, :], HEAD_RANK) for h in range(heads)]
        block[f"P{short}"] = torch.stack([u for u, _ in factors]).unsqueeze(0)  # (1, H, d, r)
        block[f"V{short}"] = torch.stack([v for _, v in factors]).unsqueeze(0)  # (1, H, r, dh)
        block[f"b{short}"] = linear.bias.reshape(1, heads, 1, width // heads)
    for (u, v, b), linear, rank in (
        (("Uo", "Vo", "bo_attn"), layer.attention.output.dense, WO_RANK),
        (("U1", "V1", "b1"), layer.intermediate.dense, FFN_RANK),
        (("U2", "V2", "b2"), layer.output.dense, FFN_RANK),
    ):
        block[u], block[v] = svd_factors(linear.weight.T, rank)
        block[b] = linear.bias
    for norm, module in (("ln1", layer.attention.output.LayerNorm), ("ln2", layer.output.LayerNorm)):
        block[f"{norm}.weight"], block[f"{norm}.bias"] = module.weight, module.bias
    return {name: tensor.detach().clone() for name, tensor in block.items()}


def product_weights(block: dict[str, torch.Tensor], heads: int) -> dict[str, torch.Tensor]:
    """The dense weights FlashSVD's block applies, head by head, as ``{module: (out, in) weight}``."""
    dense = {}
    for short, module in (("q", "query"), ("k", "key"), ("v", "value")):
        p, v = block[f"P{short}"][0], block[f"V{short}"][0]
        dense[f"attention.self.{module}"] = torch.cat([p[h] @ v[h] for h in range(heads)], dim=1).T
    dense["attention.output.dense"] = (block["Uo"] @ block["Vo"]).T
    dense["intermediate.dense"] = (block["U1"] @ block["V1"]).T
    dense["output.dense"] = (block["U2"] @ block["V2"]).T
    return dense


@pytest.fixture(scope="module")
def flashsvd_folder(
    tmp_path_factory: pytest.TempPathFactory, minilm: Path
) -> tuple[Path, torch.nn.Module, torch.nn.Module]:
    """(FlashSVD folder, the factorised reference model, the original dense model)."""
    from transformers import BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(minilm)
    # Weights drawn wide enough that the logits are of order 1, and truncation shows in them.
    config = tiny_config("bert", len(LABELS), 2, tokenizer, initializer_range=0.3)
    config.id2label = dict(enumerate(LABELS))
    config.label2id = {label: index for index, label in enumerate(LABELS)}
    torch.manual_seed(0)
    original = BertForSequenceClassification(config).eval()
    heads = config.num_attention_heads

    reference = BertForSequenceClassification(config).eval()
    reference.load_state_dict(original.state_dict())
    state = {
        key: value
        for key, value in original.state_dict().items()
        if ".encoder.layer." not in key  # the blocks replace the whole layers
    }
    for index, layer in enumerate(original.bert.encoder.layer):
        block = flashsvd_block(layer, heads)
        state.update({f"bert.encoder.layer.{index}.block.{name}": tensor for name, tensor in block.items()})
        with torch.no_grad():
            for module, weight in product_weights(block, heads).items():
                reference.bert.encoder.layer[index].get_submodule(module).weight.copy_(weight)

    folder = tmp_path_factory.mktemp("compressed_models") / "tiny-bert_standard_r4"
    folder.mkdir()
    config.architectures = [type(original).__name__]  # as FlashSVD's model.save_pretrained writes it
    config.save_pretrained(folder)
    torch.save(state, folder / "flashsvd_state_dict.pt")
    info = {
        "method": "standard",
        "ranks": {"attn": HEAD_RANK, "ffn": FFN_RANK, "wo": WO_RANK},
        "base_model": str(minilm),  # the tokenizer's source
        "task": "sst2",
        "timestamp": "2026-01-30T10:00:00",
        "git_commit": None,
        "flashsvd_version": "0.1.0",
        "schema_version": 2,
        "arch": "bert",
        "block_impl": "BertSVDBlock",
        "block_impl_version": "1",
    }
    (folder / "compression_info.json").write_text(json.dumps(info, indent=2))
    return folder, reference, original


@pytest.fixture(scope="module")
def topics(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_topic_csvs(
        tmp_path_factory.mktemp("data") / "topics", LABELS, {"train": 32, "validation": 16}
    )


def logits_of(model: torch.nn.Module, texts: list[str], tokenizer_folder: Path) -> torch.Tensor:
    batch = AutoTokenizer.from_pretrained(tokenizer_folder)(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        return model(**batch).logits


def test_loads_with_low_rank_layers_of_the_factors_ranks_and_matches_the_factorised_model(
    flashsvd_folder: tuple[Path, torch.nn.Module, torch.nn.Module],
    minilm: Path,
) -> None:
    import tuneyard
    from tuneyard.models.lowrank import lowrank_layers

    folder, reference, original = flashsvd_folder
    model = tuneyard.load(folder)

    ranks = {
        name.split("layer.0.")[1]: layer.rank for name, layer in lowrank_layers(model) if "layer.0." in name
    }
    assert ranks == {
        "attention.self.query": 2 * HEAD_RANK,  # two heads side by side
        "attention.self.key": 2 * HEAD_RANK,
        "attention.self.value": 2 * HEAD_RANK,
        "attention.output.dense": WO_RANK,
        "intermediate.dense": FFN_RANK,
        "output.dense": FFN_RANK,
    }
    texts = ["football match tonight", "bake the bread slowly with butter", "goal"]
    got, expected = logits_of(model, texts, minilm), logits_of(reference, texts, minilm)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)
    # The truncated factors are what runs: the uncompressed model answers otherwise.
    assert (logits_of(original, texts, minilm) - got).abs().max() > 1e-2


def test_eval_scores_it_as_the_factorised_model(
    cli: Callable[..., Any],
    flashsvd_folder: tuple[Path, torch.nn.Module, torch.nn.Module],
    topics: Path,
    tmp_path: Path,
    minilm: Path,
) -> None:
    folder, reference, _ = flashsvd_folder
    out = tmp_path / "scores"
    result = cli(
        "--yard", tmp_path / "yard", "eval", "--checkpoint", folder, "--data", topics,
        "--output-dir", out, "--batch-size", "8", "--quiet",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr

    with next(out.rglob("predictions.csv")).open() as handle:
        rows = list(csv.DictReader(handle))
    texts = [row["text"] for row in rows]
    expected = torch.softmax(logits_of(reference, texts, minilm), dim=-1)
    got = torch.tensor([[float(row[f"prob_{label}"]) for label in LABELS] for row in rows])
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def test_finetune_trains_its_factors_into_a_tuneyard_compressed_model(
    cli: Callable[..., Any],
    flashsvd_folder: tuple[Path, torch.nn.Module, torch.nn.Module],
    topics: Path,
    tmp_path: Path,
) -> None:
    import tuneyard
    from tuneyard.models.lowrank import lowrank_layers

    folder, _, _ = flashsvd_folder
    result = cli(
        "--yard", tmp_path / "yard", "finetune", "--checkpoint", folder, "--data", topics,
        "--epochs", "1", "--batch-size", "8", "--learning-rate", "1e-3", "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    run = Path(result.stdout.strip())
    assert run.relative_to(tmp_path / "yard").parts[:4] == ("models", "finetuned", "bert", "standard")

    info = json.loads((run / "best" / "compression_info.json").read_text())
    assert info["layers"]["bert.encoder.layer.1.attention.self.query"]["rank"] == 2 * HEAD_RANK
    assert info["flashsvd"]["block_impl"] == "BertSVDBlock"
    before = dict(lowrank_layers(tuneyard.load(folder)))
    after = dict(lowrank_layers(tuneyard.load(run / "best")))
    assert before.keys() == after.keys()
    changed = [name for name in after if not torch.equal(after[name].left, before[name].left)]
    assert changed, "fine-tuning trained no factor"


def test_a_state_dict_that_needs_full_unpickling_is_refused(
    cli: Callable[..., Any],
    flashsvd_folder: tuple[Path, torch.nn.Module, torch.nn.Module],
    topics: Path,
    tmp_path: Path,
) -> None:
    import shutil

    folder = tmp_path / "tampered"
    shutil.copytree(flashsvd_folder[0], folder)
    state = torch.load(folder / "flashsvd_state_dict.pt", weights_only=True)
    torch.save({**state, "extra": Path("/etc")}, folder / "flashsvd_state_dict.pt")  # a pickled object

    result = cli("eval", "--checkpoint", folder, "--data", topics, "--output-dir", tmp_path / "scores")

    assert result.exit_code == 2
    assert "error:" in result.stderr and "not only tensors" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_config_that_does_not_fit_the_weights_is_refused(
    cli: Callable[..., Any],
    flashsvd_folder: tuple[Path, torch.nn.Module, torch.nn.Module],
    topics: Path,
    tmp_path: Path,
) -> None:
    import shutil

    folder = tmp_path / "mixed_up"
    shutil.copytree(flashsvd_folder[0], folder)
    config = json.loads((folder / "config.json").read_text())
    config["vocab_size"] += 1  # the saved embeddings have one row fewer
    (folder / "config.json").write_text(json.dumps(config))

    result = cli("eval", "--checkpoint", folder, "--data", topics, "--output-dir", tmp_path / "scores")

    assert result.exit_code == 2, result.stderr
    assert "does not match its config.json's BertForSequenceClassification" in result.stderr
    assert "word_embeddings.weight" in result.stderr and "Traceback" not in result.stderr
