"""FlashSVD's own compressed folders (seed 000), rebuilt with tuneyard's low-rank layers.

FlashSVD writes a compressed encoder as:

* ``config.json`` — the classifier's Hugging Face config (``architectures`` names the class);
* ``flashsvd_state_dict.pt`` — ``torch.save(model.state_dict())`` of a model whose encoder
  layers it replaced by a shim around one of its SVD blocks: Hugging Face's keys for the
  embeddings, pooler and head, ``{base}.encoder.layer.{i}.block.{name}`` for each layer's
  factors and norms;
* ``compression_info.json`` — method, ranks by kind (``attn``, ``ffn``, ``wo``), base model,
  task; no table of layers (tuneyard's own format has one, :mod:`.compressed_folder`).

The block parameters, for a layer of width ``d`` with ``H`` heads of width ``dh``:
``Pq/Pk/Pv`` ``(1, H, d, r)`` (or ``(H, d, r)``) and ``Vq/Vk/Vv`` ``(1, H, r, dh)``, applied
per head as ``x @ P[h] @ V[h] + b[h]`` with ``bq/bk/bv`` ``(1, H, 1, dh)``; ``Uo, Vo, bo_attn``
(attention output), ``U1, V1, b1`` (intermediate), ``U2, V2, b2`` (output), each applied
as ``x @ U @ V + b``; ``ln1``, ``ln2`` the two LayerNorms.

Each product becomes a :class:`~tuneyard.models.lowrank.LowRankLinear` with
``left = V^T`` and ``right = U^T``, its rank read from the factors' shapes. The per-head
projections become one layer each: ``right`` stacks every head's ``P^T``, ``left`` is the
block-diagonal of the heads' ``V^T``, so its rank is ``H * r`` and it computes exactly
what FlashSVD's heads compute. The state dict is read with ``weights_only=True``.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import ModelError
from tuneyard.models.compressed_folder import CompressionInfo, LayerInfo, ParamCounts
from tuneyard.yard.metadata_guess import COMPRESSION_INFO_FILE, read_compression_fields

if TYPE_CHECKING:
    import torch
    from torch import nn

FLASHSVD_WEIGHTS = "flashsvd_state_dict.pt"

# FlashSVD block parameters -> the Hugging Face module (under the layer) they stand for.
# Products applied as x @ U @ V + b: (U, V, bias).
PRODUCTS = {
    "attention.output.dense": ("Uo", "Vo", "bo_attn"),
    "intermediate.dense": ("U1", "V1", "b1"),
    "output.dense": ("U2", "V2", "b2"),
}
# Per-head products x @ P[h] @ V[h] + b[h]: (P, V, bias).
PER_HEAD = {
    "attention.self.query": ("Pq", "Vq", "bq"),
    "attention.self.key": ("Pk", "Vk", "bk"),
    "attention.self.value": ("Pv", "Vv", "bv"),
}
NORMS = {"ln1": "attention.output.LayerNorm", "ln2": "output.LayerNorm"}

_BLOCK_KEY = re.compile(r"^(?P<layer>.+\.layer\.\d+)\.block\.(?P<name>.+)$")
UNSAFE_HINT = (
    "FlashSVD saves torch.save(model.state_dict()), which holds tensors only; this file holds "
    "more. Re-save the model's state dict from FlashSVD, or load it there."
)


def is_flashsvd_folder(folder: Path) -> bool:
    """A folder FlashSVD wrote: its state dict, and a ``compression_info.json`` without a layer table."""
    if not (folder / FLASHSVD_WEIGHTS).is_file():
        return False
    try:
        info = json.loads((folder / COMPRESSION_INFO_FILE).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and "layers" not in info


def flashsvd_base_model(folder: Path) -> str | None:
    """The base model (hub id or path) a FlashSVD folder was compressed from, if it is one."""
    if not is_flashsvd_folder(folder):
        return None
    base = json.loads((folder / COMPRESSION_INFO_FILE).read_text()).get("base_model")
    return base if isinstance(base, str) and base else None


def load_flashsvd_folder(folder: Path) -> Any:
    """The folder's model as its Hugging Face class with :class:`LowRankLinear` layers, in eval mode."""
    from transformers import AutoConfig

    from tuneyard.models.loading import model_class_for
    from tuneyard.yard.torch_checkpoint import load_tensors_only, tensors_of

    path = folder / FLASHSVD_WEIGHTS
    state = load_tensors_only(path, hint=UNSAFE_HINT)
    if not isinstance(state, dict):
        raise ModelError(f"{path} holds a {type(state).__name__}, not a state dict.")
    tensors = tensors_of(state, path)
    config = AutoConfig.from_pretrained(folder)
    model_class = model_class_for(config)
    if model_class.__module__.startswith("transformers.models.auto"):
        raise ModelError(
            f"{folder / 'config.json'} names no model class (architectures), so the head "
            "around FlashSVD's blocks is unknown.",
            'Add "architectures": ["BertForSequenceClassification"] (the class FlashSVD compressed) to it.',
        )
    model = model_class(config)
    replaced = install_blocks(model, tensors, path)
    plain = {key: value for key, value in tensors.items() if not _BLOCK_KEY.match(key)}
    plain.update(norm_tensors(tensors))
    _load_rest(model, plain, replaced, path)
    return model.eval()


def install_blocks(model: nn.Module, tensors: dict[str, torch.Tensor], path: Path) -> list[str]:
    """Replace each FlashSVD block's linear layers in ``model`` by low-rank layers of its factors.

    Returns the names of the replaced modules.
    """
    from tuneyard.models.lowrank import LowRankLinear, replace_module

    blocks: dict[str, dict[str, torch.Tensor]] = defaultdict(dict)
    for key, tensor in tensors.items():
        found = _BLOCK_KEY.match(key)
        if found:
            blocks[found["layer"]][found["name"]] = tensor
    if not blocks:
        raise ModelError(f"{path} holds no FlashSVD block factors ({{layer}}.block.U1 ...).")
    replaced = []
    for layer, params in blocks.items():
        _check_known(layer, params, path)
        for module, (u, v, bias) in PRODUCTS.items():
            factor = LowRankLinear.from_factors(params[v].T, params[u].T, params[bias])
            replace_module(model, f"{layer}.{module}", factor)
            replaced.append(f"{layer}.{module}")
        for module, (p, v, bias) in PER_HEAD.items():
            left, right = per_head_factors(params[p], params[v])
            replace_module(
                model, f"{layer}.{module}", LowRankLinear.from_factors(left, right, params[bias].reshape(-1))
            )
            replaced.append(f"{layer}.{module}")
    return replaced


def per_head_factors(p: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(left, right)`` of one linear layer computing every head's ``x @ P[h] @ V[h]``.

    ``P`` is ``(H, d, r)`` and ``V`` ``(H, r, dh)`` (a leading axis of 1 allowed): ``right``
    is ``(H r, d)``, the heads' ``P^T`` stacked; ``left`` is ``(H dh, H r)``, block-diagonal.
    """
    import torch

    p = p.reshape(-1, *p.shape[-2:])
    v = v.reshape(-1, *v.shape[-2:])
    right = p.transpose(1, 2).reshape(-1, p.shape[1])
    left = torch.block_diag(*(head.T for head in v))
    return left, right


def norm_tensors(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The blocks' LayerNorm tensors under Hugging Face's names (``ln1``: ``attention.output.LayerNorm``)."""
    renamed = {}
    for key, tensor in tensors.items():
        found = _BLOCK_KEY.match(key)
        if found:
            norm, _, param = found["name"].partition(".")
            if norm in NORMS:
                renamed[f"{found['layer']}.{NORMS[norm]}.{param}"] = tensor
    return renamed


def _check_known(layer: str, params: dict[str, torch.Tensor], path: Path) -> None:
    known = {name for names in (*PRODUCTS.values(), *PER_HEAD.values()) for name in names}
    names = {name.partition(".")[0] for name in params}
    unknown = sorted(names - known - set(NORMS))
    missing = sorted(known - names)
    if unknown or missing:
        problem = f"unknown {unknown}" if unknown else f"missing {missing}"
        raise ModelError(
            f"{path}: the FlashSVD block of {layer} has parameters tuneyard cannot map ({problem}).",
            "tuneyard reads FlashSVD's per-head SVD blocks (standard and FWSVD methods on BERT "
            "and RoBERTa); load other blocks with FlashSVD itself.",
        )


def _load_rest(model: nn.Module, plain: dict[str, torch.Tensor], replaced: list[str], path: Path) -> None:
    """Load every tensor outside the factors; any left over or missing is an error, not a random init."""
    try:
        result = model.load_state_dict(plain, strict=False)
    except RuntimeError as exc:  # a tensor whose shape is not the config's (torch names them all)
        mismatch = str(exc).splitlines()[-1].strip()
        raise ModelError(
            f"{path} does not match its config.json's {type(model).__name__}: {mismatch}",
            "The folder's files were mixed up or edited; re-save it with FlashSVD.",
        ) from None
    missing = [key for key in result.missing_keys if key.rpartition(".")[0] not in replaced]
    # Buffers transformers no longer saves (position_ids) may be in an older state dict.
    buffers = {name for name, _ in model.named_buffers()}
    unexpected = [key for key in result.unexpected_keys if key not in buffers]
    if missing or unexpected:
        problem = f"lacks {missing[:3]}" if missing else f"has unknown tensors {unexpected[:3]}"
        raise ModelError(
            f"{path} does not match its config.json's {type(model).__name__}: it {problem}.",
            "The folder's files were mixed up or edited; re-save it with FlashSVD.",
        )


def flashsvd_compression_info(folder: Path, model: nn.Module) -> CompressionInfo:
    """A tuneyard ``compression_info.json`` for ``model`` loaded from the FlashSVD ``folder``.

    The layer table comes from the model's low-rank layers (ranks from the factors), the
    method, task and base model from FlashSVD's own info file.
    """
    from tuneyard.models.lowrank import lowrank_layers

    fields = read_compression_fields(folder)
    raw = json.loads((folder / COMPRESSION_INFO_FILE).read_text())
    layers = {
        name: LayerInfo(
            rank=layer.rank,
            shape=(layer.out_features, layer.in_features),
            module_type=name.rpartition(".")[2],
            params_before=layer.out_features * layer.in_features,
            params_after=layer.rank * (layer.out_features + layer.in_features),
        )
        for name, layer in lowrank_layers(model)
    }
    total = sum(parameter.numel() for parameter in model.parameters())
    before = sum(layer.params_before for layer in layers.values())
    after = sum(layer.params_after for layer in layers.values())
    config = getattr(model, "config", None)
    return CompressionInfo(
        arch=str(fields.get("arch") or getattr(config, "model_type", "unknown")),
        model_type=str(getattr(config, "model_type", "unknown")),
        model_class=type(model).__name__,
        method=str(fields.get("method") or "unknown"),
        rank=fields.get("rank"),
        base_model=str(raw.get("base_model") or folder),
        task=fields.get("task"),
        head="task",
        layers=layers,
        params=ParamCounts(
            total_before=total - after + before,
            total_after=total,
            compressible_before=before,
            compressible_after=after,
        ),
        flashsvd=raw,
    )
