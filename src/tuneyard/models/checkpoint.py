"""What the ``--checkpoint`` is: a plain model or a compressed one, its family and name.

The answer decides the strategy's default, the run's place in the yard
(``models/finetuned/{arch}/{method}/{name}`` or ``outputs/{project}/{dataset}/{name}``)
and the lineage link in the run's manifest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import ManifestError, ModelError
from tuneyard.models.compressed_folder import is_compressed_folder
from tuneyard.yard.manifest import read_manifest_if_any
from tuneyard.yard.metadata_guess import infer_metadata, path_tokens
from tuneyard.yard.storage import LOCAL, Storage

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard

# Name tokens that say nothing about the model (folder names like ``model`` or ``best``).
GENERIC_TOKENS = frozenset(
    {
        "all",
        "sentence",
        "transformers",
        "hf",
        "model",
        "models",
        "best",
        "last",
        "checkpoint",
        "final",
        "pretrained",
        "uncased",
        "cased",
        "finetuned",
        "compressed",
    }
)
SIZE_WORDS = ("tiny", "mini", "small", "base", "medium", "large", "xl", "xxl")
_SIZE_TOKEN = re.compile(r"^(l\d+|\d+(\.\d+)?[mb])$")
_VERSION_TOKEN = re.compile(r"^(v\d+(\.\d+)*|\d+)$")


@dataclass
class StartingCheckpoint:
    """The model a run starts from."""

    source: str  # absolute folder path, or a hub id
    local: bool
    folder_name: str
    arch: str
    model_type: str  # config.json's model_type
    method: str | None = None  # compression method; None for a plain model
    rank: int | None = None
    num_layers: int | None = None
    inferred: list[str] = field(default_factory=list)
    naming_source: str = ""

    @property
    def compressed(self) -> bool:
        return self.method is not None

    def name_parts(self) -> tuple[str, str | None]:
        """``(model_type, model_size)`` for run names such as ``minilm_l6_lora_012``.

        Read from the checkpoint's folder name, or from config.json's ``_name_or_path``
        when the folder name is generic (``model``, ``best``): the first meaningful token
        is the type, a size word (``base``, ``small``) or ``L6``-style token is the size;
        without one, the size is ``l{num_hidden_layers}``.
        """
        tokens = [t for t in path_tokens(self.naming_source) if t not in GENERIC_TOKENS]
        size = next((t for t in tokens if t in SIZE_WORDS or _SIZE_TOKEN.match(t)), None)
        kind = next(
            (
                t
                for t in tokens
                if t != size and len(t) > 1 and t[0].isalpha() and not _VERSION_TOKEN.match(t)
            ),
            self.model_type,
        )
        if size is None and self.num_layers:
            size = f"l{self.num_layers}"
        return kind, size


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} is not readable JSON: {exc}.") from exc
    return data if isinstance(data, dict) else {}


def describe_local(folder: Path, storage: Storage) -> StartingCheckpoint:
    """Describe a model folder on disk; refuse folders that hold no model.

    Its manifest is read through ``storage``, the storage of the yard it may belong to.
    """
    if not folder.exists():
        raise ModelError(
            f"checkpoint {folder} does not exist.", "Give a model folder or a Hugging Face hub id."
        )
    if (folder / "adapter_config.json").is_file():
        raise ModelError(
            f"checkpoint {folder} is a LoRA adapter, not a full model.",
            "Fine-tune its base model, or fold the adapter in first with `tuneyard merge`.",
        )
    if not folder.is_dir() or not (folder / "config.json").is_file():
        raise ModelError(
            f"checkpoint {folder} is not a model folder: it has no config.json.",
            "Point --checkpoint at a folder made by save_pretrained (config.json + weights), "
            "e.g. a run's best/ folder.",
        )
    config = _read_json(folder / "config.json")
    model_type = str(config.get("model_type") or "unknown")
    try:
        manifest = read_manifest_if_any(folder, storage)
    except ManifestError:
        manifest = None
    values, inferred = infer_metadata(folder)
    compressed = is_compressed_folder(folder) or (manifest is not None and manifest.kind == "compressed")
    method = None
    rank = None
    if compressed:
        method = str((manifest.method if manifest and manifest.method else None) or values["method"])
        rank = (manifest.rank if manifest else None) or values.get("rank")
    else:
        inferred = [item for item in inferred if item != "method"]
    arch = str((manifest.arch if manifest and manifest.arch else None) or values["arch"])
    naming = folder.name
    if not [t for t in path_tokens(naming) if t not in GENERIC_TOKENS]:
        naming = str(config.get("_name_or_path") or model_type).rstrip("/").rsplit("/", 1)[-1]
    return StartingCheckpoint(
        source=folder.as_posix(),
        local=True,
        folder_name=folder.name,
        arch=arch,
        model_type=model_type,
        method=method,
        rank=rank if isinstance(rank, int) else None,
        num_layers=config.get("num_hidden_layers") or config.get("n_layer"),
        inferred=inferred if manifest is None else [],
        naming_source=naming,
    )


def describe_hub(model_id: str) -> StartingCheckpoint:
    """Describe a hub model by its config (downloaded or from the HF cache)."""
    from tuneyard.models.loading import load_config

    config = load_config(model_id)
    from tuneyard.models.layout import arch_of

    return StartingCheckpoint(
        source=model_id,
        local=False,
        folder_name=model_id.rsplit("/", 1)[-1],
        arch=arch_of(config.model_type),
        model_type=config.model_type,
        num_layers=getattr(config, "num_hidden_layers", None),
        naming_source=model_id.rsplit("/", 1)[-1],
    )


def describe_checkpoint(checkpoint: str, yard: Yard | None = None) -> StartingCheckpoint:
    """A local folder if one exists at ``checkpoint``, else a hub id (``org/name``).

    Given ``yard``, a GGUF file is described as the plain folder it is imported to
    there (once; :func:`tuneyard.models.gguf.resolve_model_path`).
    """
    if yard is not None:
        from tuneyard.models.gguf import resolve_model_path

        checkpoint = resolve_model_path(checkpoint, yard)
    path = Path(checkpoint).expanduser()
    looks_like_hub_id = re.fullmatch(
        r"[\w.-]+(/[\w.-]+)?", checkpoint
    ) is not None and not checkpoint.startswith(".")
    if path.exists() or not looks_like_hub_id:
        return describe_local(path.resolve(), yard.storage if yard is not None else LOCAL)
    return describe_hub(checkpoint)
