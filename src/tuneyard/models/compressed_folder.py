"""The on-disk format of a compressed model, owned here and nowhere else.

A compressed model folder holds:

* ``config.json`` — the base model's unchanged HF config (``architectures`` names the class);
* ``model.safetensors`` — every tensor, low-rank layers as ``<name>.left`` / ``<name>.right``;
* ``compression_info.json`` — :class:`CompressionInfo`: which layers are low-rank and at
  which rank (what a loader needs to rebuild the module tree), plus how they were made;
* the tokenizer files of the base model.

FlashSVD's own folders (``flashsvd_state_dict.pt``, an info file without the layer table)
load too, through :mod:`tuneyard.models.flashsvd_folder`.

Rebuilding needs nothing else: the class is built from the config, the listed layers
are swapped for :class:`LowRankLinear` of the recorded ranks, and the safetensors are
loaded strictly, so a missing or extra tensor is an error rather than a silent random init.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tuneyard.errors import ModelError
from tuneyard.version import __version__
from tuneyard.yard.metadata_guess import COMPRESSION_INFO_FILE

WEIGHTS_FILE = "model.safetensors"
INFO_FORMAT = 1


class LayerInfo(BaseModel):
    """One factorised layer: its rank, dense shape and weight counts."""

    rank: int = Field(ge=1)
    shape: tuple[int, int]  # (out_features, in_features)
    module_type: str | None = None
    params_before: int
    params_after: int


class ParamCounts(BaseModel):
    """Weights before and after compression (whole model and compressible layers)."""

    total_before: int
    total_after: int
    compressible_before: int
    compressible_after: int

    @property
    def ratio(self) -> float:
        """Fraction of the compressible weights kept."""
        return self.compressible_after / max(self.compressible_before, 1)


class CalibrationInfo(BaseModel):
    """Where the calibration statistics came from."""

    source: str
    split: str = "train"
    samples: int
    max_length: int
    seed: int
    labelled: bool


class CompressionInfo(BaseModel):
    """``compression_info.json``: enough to rebuild the model, and how it was made."""

    model_config = ConfigDict(extra="allow", protected_namespaces=())

    format: int = INFO_FORMAT
    arch: str
    model_type: str
    model_class: str
    method: str
    rank: int | None = None
    ranks_by_type: dict[str, int] | None = None
    ratio: float | None = None
    base_model: str
    task: str | None = None
    calibration: CalibrationInfo | None = None
    head: str = "base"
    layers: dict[str, LayerInfo]
    dense_layers: dict[str, str] = Field(default_factory=dict)
    params: ParamCounts
    method_options: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0
    tuneyard_version: str = __version__

    @property
    def ranks(self) -> dict[str, int]:
        """``{module name: rank}`` of every low-rank layer."""
        return {name: layer.rank for name, layer in self.layers.items()}


def is_compressed_folder(folder: Path) -> bool:
    """True when ``folder`` looks like a tuneyard compressed model."""
    return (folder / COMPRESSION_INFO_FILE).exists()


def _read_info_json(folder: Path) -> Any:
    """The parsed ``compression_info.json`` (``FileNotFoundError`` / ``ValueError`` as raised)."""
    return json.loads((folder / COMPRESSION_INFO_FILE).read_text())


def read_compression_info(folder: Path) -> CompressionInfo:
    """Read and validate a tuneyard ``compression_info.json``; a clear error when missing or corrupt."""
    target = folder / COMPRESSION_INFO_FILE
    hint = "Re-create the folder with `tuneyard compress`; the info file cannot be guessed from the weights."
    try:
        data = _read_info_json(folder)
    except FileNotFoundError as exc:
        raise ModelError(f"{folder} has no {COMPRESSION_INFO_FILE}.", hint) from exc
    except (OSError, ValueError) as exc:
        raise ModelError(f"{target} is not readable JSON: {exc}.", hint) from exc
    try:
        return CompressionInfo.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"])
        raise ModelError(f"{target}: field {field!r} {first['msg'].lower()}.", hint) from exc


def write_compressed_folder(model: Any, tokenizer: Any, info: CompressionInfo, folder: Path) -> None:
    """Write config, safetensors, tokenizer and ``compression_info.json`` into ``folder``."""
    from safetensors.torch import save_model

    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(folder)
    save_model(model, str(folder / WEIGHTS_FILE), metadata={"format": "pt"})
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)
    (folder / COMPRESSION_INFO_FILE).write_text(info.model_dump_json(indent=2) + "\n")


def compression_info_of(folder: Path, model: Any) -> CompressionInfo:
    """The compression info of the folder ``model`` was loaded from.

    A tuneyard folder's file as written; a FlashSVD folder's (which has no layer table)
    with its layers read from ``model``'s low-rank layers.
    """
    from tuneyard.models.flashsvd_folder import flashsvd_compression_info, is_flashsvd_folder

    if is_flashsvd_folder(folder):
        return flashsvd_compression_info(folder, model)
    return read_compression_info(folder)


def load_compressed_folder(folder: Path) -> Any:
    """Rebuild a compressed model from its folder alone (offline), in eval mode.

    A folder FlashSVD wrote loads through :mod:`tuneyard.models.flashsvd_folder`.
    """
    import transformers
    from safetensors.torch import load_model
    from transformers import AutoConfig

    from tuneyard.models.flashsvd_folder import is_flashsvd_folder, load_flashsvd_folder
    from tuneyard.models.lowrank import install_empty_lowrank

    if is_flashsvd_folder(folder):
        return load_flashsvd_folder(folder)
    info = read_compression_info(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelError(
            f"{folder} has no {WEIGHTS_FILE}.", "The folder is incomplete; re-run `tuneyard compress`."
        )
    config = AutoConfig.from_pretrained(folder)
    model_class = getattr(transformers, info.model_class, None)
    if model_class is None:
        raise ModelError(
            f"{COMPRESSION_INFO_FILE} names model class {info.model_class!r}, which transformers "
            f"{transformers.__version__} does not have."
        )
    model = model_class(config)
    install_empty_lowrank(model, info.ranks)
    try:
        load_model(model, str(weights), strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"{weights} does not match the layers in {COMPRESSION_INFO_FILE}: {str(exc).splitlines()[0]}",
            "The folder's files were mixed up or edited; re-run `tuneyard compress`.",
        ) from exc
    return model.eval()
