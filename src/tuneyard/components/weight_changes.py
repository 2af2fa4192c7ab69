"""What fine-tuning changed in a model's blocks, per linear layer: ``{name}_weights.png`` and its numbers.

One number per block linear layer (its name inside the block, ``attention.self.query``,
and the block's number, from the model's layout, :mod:`tuneyard.models.layout`): the
Frobenius norm of the change training made to that layer's weight.

* A LoRA model: ``B·A`` times PEFT's scaling (``alpha / r``), which is what the adapter
  adds to the frozen weight, read with PEFT's own ``get_delta_weight``. A layer without an
  adapter (``--lora-layers`` left it out) changed by exactly 0.
* Any other model (``full``, ``frozen``, ``lowrank``): ``W_trained - W_base``, the base
  being the checkpoint the run started from. A layer whose weights did not train (every
  block layer of ``frozen``) is 0 without reading the base, so the base is loaded only
  when some block layer trained. A layer the base lacks (transformers' attention adapters,
  ``--strategy adapter``) counts whole: its weight is the change.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuneyard.components.figure import new_figure, plot_per_layer, save_png

if TYPE_CHECKING:
    from torch import nn

    from tuneyard.models.layout import ModelLayout

COLUMNS = ("module", "layer", "norm")


@dataclass(frozen=True)
class WeightChanges:
    """Per-layer change norms of one model and what they measure."""

    measure: str  # "lora" (scaled B·A) or "delta" (W_trained - W_base)
    norms: dict[tuple[str, int], float]  # (module inside the block, block number) -> Frobenius norm

    @property
    def label(self) -> str:
        """How the figure names the measured change."""
        return "LoRA B·A x alpha/r" if self.measure == "lora" else "W_trained - W_base"

    def csv_text(self) -> str:
        """The numbers as CSV: ``module,layer,norm``, blocks in order."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(COLUMNS)
        for (module, layer), norm in sorted(self.norms.items(), key=lambda item: (item[0][1], item[0][0])):
            writer.writerow([module, layer, repr(norm)])
        return buffer.getvalue()


def weight_changes(
    model: nn.Module, layout: ModelLayout, load_base: Callable[[], nn.Module]
) -> WeightChanges:
    """The change norms of ``model`` (a LoRA model's adapters, else its weights against ``load_base()``)."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        return WeightChanges("lora", _lora_norms(model, layout))
    return WeightChanges("delta", _delta_norms(model, layout, load_base))


def _block_layers(model: nn.Module, layout: ModelLayout) -> dict[tuple[str, int], Any]:
    """``(module, block) -> module`` for every block linear layer of the layout."""
    found = {}
    for name, module in model.named_modules():
        relative, number = layout.relative_name(name), layout.layer_number(name)
        if relative in layout.compressible and number is not None:
            found[(relative, number)] = module
    return found


def _lora_norms(model: nn.Module, layout: ModelLayout) -> dict[tuple[str, int], float]:
    import torch
    from peft.tuners.lora import LoraLayer

    norms = {}
    with torch.no_grad():
        for key, module in _block_layers(model, layout).items():
            adapters = []
            if isinstance(module, LoraLayer):
                adapters = [name for name in module.active_adapters if name in module.lora_A]
            if not adapters:  # a layer --lora-layers or --lora-targets left out: unchanged
                norms[key] = 0.0
                continue
            delta = sum(module.get_delta_weight(adapter).to(torch.float32) for adapter in adapters)
            norms[key] = float(torch.linalg.matrix_norm(delta))
    return norms


def _delta_norms(
    model: nn.Module, layout: ModelLayout, load_base: Callable[[], nn.Module]
) -> dict[tuple[str, int], float]:
    import torch

    from tuneyard.models.lowrank import linear_weight

    layers = _block_layers(model, layout)
    trained = {key for key, module in layers.items() if any(p.requires_grad for p in module.parameters())}
    base_layers = _block_layers(load_base(), layout) if trained else {}
    norms = {}
    with torch.no_grad():
        for key, module in layers.items():
            if key not in trained:
                norms[key] = 0.0
                continue
            weight = linear_weight(module).detach().to("cpu", torch.float32)
            if key not in base_layers:  # a layer training added (an attention adapter): all of it is new
                norms[key] = float(torch.linalg.matrix_norm(weight))
                continue
            base = linear_weight(base_layers[key]).detach().to("cpu", torch.float32)
            norms[key] = float(torch.linalg.matrix_norm(weight - base))
    return norms


def plot_weight_changes(changes: WeightChanges, target: Path, title: str) -> Path:
    """A heatmap (module x layer) of the norms and the same numbers as one line per module."""
    from matplotlib import colormaps

    modules = list(dict.fromkeys(key[0] for key in changes.norms))
    layers = sorted({key[1] for key in changes.norms})
    matrix = np.array(
        [[changes.norms.get((module, layer), np.nan) for layer in layers] for module in modules]
    )
    figure = new_figure(max(8.0, 0.5 * len(layers) + 7), max(3.4, 0.3 * len(modules) + 2))
    figure.suptitle(title)
    heatmap = figure.add_subplot(1, 2, 1)
    largest = float(np.nanmax(matrix)) if np.isfinite(matrix).any() else 0.0
    image = heatmap.imshow(
        np.ma.masked_invalid(matrix),
        cmap=colormaps["viridis"].with_extremes(bad="lightgrey"),
        aspect="auto",
        vmin=0.0,
        vmax=largest or 1.0,  # all zero (frozen): the darkest colour, not the middle of a +-0.1 scale
    )
    figure.colorbar(image, ax=heatmap, label=f"||{changes.label}||_F")
    heatmap.set_xticks(range(len(layers)), labels=[str(layer) for layer in layers])
    heatmap.set_yticks(range(len(modules)), labels=modules, fontsize=7)
    heatmap.set(title="Change per layer" if largest else "No block layer changed", xlabel="Layer")
    plot_per_layer(figure.add_subplot(1, 2, 2), changes.norms, changes.label, "Frobenius norm")
    return save_png(figure, target)
