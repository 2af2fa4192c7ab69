"""Pickled PyTorch checkpoints (``.pt``) from other tools: read safely, filed as safetensors.

A ``.pt`` file is a pickle, and unpickling can run any code its maker put in it. So
every ``.pt`` tuneyard reads goes through :func:`load_tensors_only`, which uses
``torch.load(weights_only=True)``: tensors, numbers, strings and containers load;
anything else (a custom class, a function) is refused with :class:`UnsafeCheckpointError`
unless the caller passes ``trust`` (the user's ``--trust``): then such a file is
unpickled in full, with an :class:`UnsafeCheckpointWarning` saying so.

Seed 004's training scripts save ``{Name}_best.pt`` and ``{Name}_last.pt``, each a dict
with ``model`` (the state dict), ``epoch``, ``best_metric`` and optionally
``optimizer``, ``scheduler`` and ``config``. :func:`import_training_checkpoints` writes
each one's weights beside it as ``{Name}_best.safetensors`` and returns what the
folder's manifest records: the epoch, the best metric, the training config and every
tensor's shape.
"""

from __future__ import annotations

import pickle
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import ArtifactExistsError, ModelError, UnsafeCheckpointError

if TYPE_CHECKING:
    import torch

    from tuneyard.yard.storage import Storage

# Seed 004's checkpoint names: {ModelName}_best.pt (best validation score), {ModelName}_last.pt.
TRAINING_CHECKPOINT = re.compile(r"^(?P<model>.+)_(?P<which>best|last)\.pt$")
TRUST_HINT = (
    "Unpickling it could run any code its maker put in it. If you trust where the file "
    "came from, pass --trust to load it in full."
)


class UnsafeCheckpointWarning(UserWarning):
    """A checkpoint was unpickled in full because the user trusted it (``--trust``)."""


def load_tensors_only(path: Path, trust: bool = False, hint: str = TRUST_HINT) -> Any:
    """The object pickled in ``path``, loaded with ``torch.load(weights_only=True)``.

    Raises :class:`UnsafeCheckpointError` (``hint`` says what to do) when the file holds
    more than tensors and plain containers, unless ``trust``: then it is unpickled in
    full, and an :class:`UnsafeCheckpointWarning` says so.
    """
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = _refused_global(str(exc))
        if not trust:
            raise UnsafeCheckpointError(f"{path} holds {reason}, not only tensors.", hint) from exc
        warnings.warn(
            f"unpickled {path.name} in full (--trust): it holds {reason}, which ran its own code to load.",
            UnsafeCheckpointWarning,
            stacklevel=2,
        )
        return _load(path, weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise ModelError(f"{path} is not a readable PyTorch checkpoint: {exc}") from exc


def _load(path: Path, weights_only: bool) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:  # a trusted pickle can raise anything its code raises
        raise ModelError(f"{path} could not be unpickled: {type(exc).__name__}: {exc}") from exc


def _refused_global(message: str) -> str:
    """The Python object torch's weights-only unpickler refused (``GLOBAL x.Y``), in words."""
    found = re.search(r"GLOBAL ([\w.]+)", message)
    return f"a {found.group(1)} object" if found else "Python objects"


def tensors_of(state: Mapping[str, Any], path: Path) -> dict[str, torch.Tensor]:
    """The state dict's tensors by name; anything else in it is an error naming the key."""
    import torch

    tensors = {}
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise ModelError(
                f"{path}: entry {name!r} of the model state is a {type(value).__name__}, not a tensor."
            )
        tensors[str(name)] = value
    return tensors


@dataclass
class TrainingCheckpoint:
    """One ``{Name}_best.pt`` / ``{Name}_last.pt``: its weights and what was saved with them."""

    path: Path
    tensors: dict[str, torch.Tensor]
    epoch: float | None = None
    best_metric: float | None = None
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def safetensors_path(self) -> Path:
        return self.path.with_suffix(".safetensors")

    def shapes(self) -> dict[str, list[int]]:
        return {name: list(tensor.shape) for name, tensor in self.tensors.items()}


def read_training_checkpoint(path: Path, trust: bool = False) -> TrainingCheckpoint:
    """Read a seed 004 checkpoint (a dict with ``model``), or a bare state dict, from ``path``."""
    data = load_tensors_only(path, trust)
    if not isinstance(data, Mapping):
        raise ModelError(
            f"{path} holds a {type(data).__name__}, not a checkpoint dict.",
            "Save checkpoints as {'model': model.state_dict(), 'epoch': ..., 'best_metric': ...}.",
        )
    if not isinstance(data.get("model"), Mapping):  # a bare state dict
        return TrainingCheckpoint(path, tensors_of(data, path))
    config = data.get("config")
    return TrainingCheckpoint(
        path,
        tensors_of(data["model"], path),
        epoch=_number(data.get("epoch")),
        best_metric=_number(data.get("best_metric")),
        config=dict(config) if isinstance(config, Mapping) else {},
    )


def _number(value: Any) -> float | None:
    import torch

    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def training_checkpoint_files(names: list[str]) -> list[str]:
    """The seed 004 checkpoint files among a folder's file names, best first."""
    found = [name for name in names if TRAINING_CHECKPOINT.match(name)]
    return sorted(found, key=lambda name: (not name.endswith("_best.pt"), name))


def refuse_existing(checkpoints: list[TrainingCheckpoint]) -> None:
    """Import never writes over a file: refuse when a checkpoint's safetensors name is taken."""
    for checkpoint in checkpoints:
        if checkpoint.safetensors_path.exists():
            raise exists_error(checkpoint.safetensors_path)


def exists_error(target: Path) -> ArtifactExistsError:
    return ArtifactExistsError(
        f"{target} exists already; import does not overwrite it.",
        "Move it away, or delete it if an earlier import left it, and import again.",
    )


def write_safetensors(checkpoint: TrainingCheckpoint, storage: Storage) -> None:
    """Write the checkpoint's weights beside it as safetensors: a temporary file, published only
    while the name is still free (a file that appeared since :func:`refuse_existing` is kept)."""
    from safetensors.torch import save

    metadata = {"format": "pt", "source": checkpoint.path.name}
    if checkpoint.epoch is not None:
        metadata["epoch"] = str(checkpoint.epoch)
    try:
        storage.write_new(checkpoint.safetensors_path, save(unshared(checkpoint.tensors), metadata=metadata))
    except FileExistsError:
        raise exists_error(checkpoint.safetensors_path) from None


def unshared(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``tensors``, contiguous, each holding memory of its own.

    safetensors refuses tensors that share memory, which tied weights (an output layer
    that is the embedding) and views of one buffer do in a state dict; every name is
    kept, so a later sharer is saved as a copy.
    """
    seen: set[int] = set()
    kept = {}
    for name, tensor in tensors.items():
        tensor = tensor.contiguous()
        memory = tensor.untyped_storage().data_ptr()
        kept[name] = tensor.clone() if memory in seen else tensor
        seen.add(memory)
    return kept


def import_training_checkpoints(
    folder: Path, names: list[str], storage: Storage, trust: bool = False
) -> dict[str, Any]:
    """Convert the folder's seed 004 checkpoints to safetensors; the manifest fields they give.

    Every checkpoint is read, and every target name checked, before any file is written,
    so a refused one leaves the folder as it was. The fields describe the best checkpoint
    (else the last): ``training`` (its epoch), ``metrics`` (``best_metric``), ``config``
    (the training config saved in it) and ``tensors`` (each checkpoint's tensor shapes).
    """
    checkpoints = [
        read_training_checkpoint(folder / name, trust) for name in training_checkpoint_files(names)
    ]
    refuse_existing(checkpoints)
    for checkpoint in checkpoints:
        write_safetensors(checkpoint, storage)
    main = checkpoints[0]
    fields: dict[str, Any] = {
        "tensors": {checkpoint.path.name: checkpoint.shapes() for checkpoint in checkpoints},
        "config": main.config,
    }
    if main.epoch is not None:
        fields["training"] = {"epoch": main.epoch}
    if main.best_metric is not None:
        fields["metrics"] = {"best_metric": main.best_metric}
    return fields
