"""Weight analysis of a model or a compressed model: ``{name}_weights.png``.

Three views, with layer types (a block's layer name, ``self_attn.q_proj``) and numbers
from the model's layout (:mod:`tuneyard.models.layout`):

* singular-value spectra (``sigma_i / sigma_1``) per layer type, one line per layer,
  with the kept rank marked for a compressed model;
* the Frobenius norm of every layer's weight, per type, against the layer number;
* for a compressed model, the energy its rank keeps per layer:
  ``sum(sigma_i^2, i < rank) / sum(sigma_i^2)`` of the *original* weight (read
  from the base model the compression info names, or ``--base``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from tuneyard.components.figure import new_figure, plot_per_layer, save_png

if TYPE_CHECKING:
    from tuneyard.models.layout import ModelLayout


@dataclass
class LayerWeights:
    """One linear layer's numbers, keyed by type (module-name suffix) and layer number."""

    layer_type: str
    layer: int
    norm: float
    spectrum: np.ndarray  # singular values, descending
    rank: int | None = None  # kept rank of a low-rank layer


def analyse_weights(model: Any, layout: ModelLayout) -> dict[tuple[str, int], LayerWeights]:
    """Norms and spectra of every compressible (or already low-rank) layer of ``model``."""
    import torch

    from tuneyard.models.lowrank import LowRankLinear, is_linear, linear_weight

    found: dict[tuple[str, int], LayerWeights] = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            low_rank = isinstance(module, LowRankLinear)
            if not (low_rank or is_linear(module)):
                continue
            kind, number = layout.relative_name(name), layout.layer_number(name)
            if kind not in layout.compressible or number is None:
                continue
            weight = linear_weight(module).detach().to(torch.float32)
            spectrum = torch.linalg.svdvals(weight).cpu().numpy()
            found[(kind, number)] = LayerWeights(
                layer_type=kind,
                layer=number,
                norm=float(torch.linalg.matrix_norm(weight)),
                spectrum=spectrum[: module.rank] if low_rank else spectrum,
                rank=module.rank if low_rank else None,
            )
    return found


def energy_kept(spectrum: np.ndarray, rank: int) -> float:
    """Share of the squared singular values in the top ``rank``."""
    energy = np.square(spectrum.astype(np.float64))
    return float(energy[:rank].sum() / energy.sum()) if energy.sum() > 0 else 0.0


def plot_weights(
    model_layers: dict[tuple[str, int], LayerWeights],
    base_layers: dict[tuple[str, int], LayerWeights] | None,
    target: Path,
    title: str,
) -> Path:
    """Draw the spectra, norms and (compressed with base) energy panels described above."""
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator

    types = list(dict.fromkeys(key[0] for key in model_layers))
    compressed = any(layer.rank is not None for layer in model_layers.values())
    spectra_source = base_layers if base_layers else model_layers
    extra = 1 + int(compressed)
    columns = min(4, len(types) + extra)
    rows = -(-(len(types) + extra) // columns)
    figure = new_figure(4.2 * columns, 3.4 * rows)
    figure.suptitle(title)
    layers = sorted({key[1] for key in model_layers})
    colors = colormaps["viridis"](np.linspace(0, 0.9, max(len(layers), 1)))
    for position, kind in enumerate(types, start=1):
        axes = figure.add_subplot(rows, columns, position)
        for color, number in zip(colors, layers):
            source = spectra_source.get((kind, number))
            if source is None or not source.spectrum.size or source.spectrum[0] <= 0:
                continue
            values = source.spectrum / source.spectrum[0]
            axes.semilogy(
                np.arange(1, len(values) + 1),
                np.clip(values, 1e-8, None),
                color=color,
                label=f"layer {number}",
            )
            kept = model_layers[(kind, number)].rank
            if kept is not None and kept <= len(values):
                axes.plot([kept], [max(values[kept - 1], 1e-8)], marker="|", markersize=14, color="tab:red")
        ranks = {model_layers[(kind, n)].rank for n in layers if (kind, n) in model_layers} - {None}
        if len(ranks) == 1:
            axes.axvline(
                next(iter(ranks)), color="tab:red", linestyle="--", label=f"kept rank {next(iter(ranks))}"
            )
        axes.set(title=f"{kind}", xlabel="Singular value index", ylabel="sigma_i / sigma_1 (log)")
        axes.grid(alpha=0.3)
        if position == 1:
            axes.legend(fontsize=7)
    norms = {key: layer.norm for key, layer in model_layers.items()}
    plot_per_layer(
        figure.add_subplot(rows, columns, len(types) + 1), norms, "Weight norm per layer", "Frobenius norm"
    )
    if compressed:
        energy = figure.add_subplot(rows, columns, len(types) + 2)
        if base_layers:
            for kind in types:
                points = sorted(
                    (n, energy_kept(base_layers[(kind, n)].spectrum, model_layers[(kind, n)].rank or 0))
                    for n in layers
                    if (kind, n) in model_layers and (kind, n) in base_layers and model_layers[(kind, n)].rank
                )
                energy.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=kind)
            energy.set_ylim(0, 1.02)
            energy.legend(fontsize=7)
        else:
            energy.text(
                0.5,
                0.5,
                "base model not available:\npass --base to plot energy kept",
                ha="center",
                va="center",
                transform=energy.transAxes,
            )
        energy.set(title="Energy kept by the rank", xlabel="Layer", ylabel="Energy kept (fraction)")
        energy.xaxis.set_major_locator(MaxNLocator(integer=True))
        energy.grid(alpha=0.3)
    return save_png(figure, target)
