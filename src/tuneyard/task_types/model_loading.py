"""``tuneyard.load(path)``, and which task type a model folder is.

A model artifact records its task type in its manifest (``task_type``), written by the
verb that made it; :func:`task_type_of_model` reads it. A folder without one (an older
yard, a foreign checkpoint, a hub model) gets it inferred once, by
:func:`infer_task_type` alone, from what the folder holds: the model class its
``config.json`` (or ``compression_info.json``) names, claimed by the task type whose
transformers auto class maps to it, or an adapter's PEFT task type.

:func:`load` follows :mod:`tuneyard.models.loading` for every folder and puts a LoRA
adapter onto the base its task type loads (a classifier's head sized from the adapter).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.models.compressed_folder import (
    COMPRESSION_INFO_FILE,
    is_compressed_folder,
    load_compressed_folder,
)
from tuneyard.models.loading import (
    ADAPTER_CONFIG,
    adapter_base,
    is_hub_id,
    load_plain,
    resolve_model_folder,
)
from tuneyard.task_types import TASK_TYPES, get_task_type
from tuneyard.yard.manifest import MANIFEST_FILE

if TYPE_CHECKING:
    from tuneyard.task_types.base import TaskType
    from tuneyard.yard.root import Yard


def load(path: str | Path) -> Any:
    """Load the model stored at ``path`` (see :mod:`tuneyard.models.loading` for the rules), in eval mode."""
    if is_hub_id(path):
        return load_plain(str(path))
    folder = resolve_model_folder(path)
    if is_compressed_folder(folder):
        return load_compressed_folder(folder)
    if (folder / ADAPTER_CONFIG).is_file():
        return _load_adapter(folder)
    return load_plain(folder)


def _load_adapter(folder: Path) -> Any:
    """The adapter on its base: a compressed base as it is, else as the adapter's task type loads it."""
    from peft import PeftModel

    base = adapter_base(folder)
    task_type = task_type_of_model(folder)
    if isinstance(base, Path) and is_compressed_folder(base):
        base_model = load_compressed_folder(base)
    elif task_type is not None:
        base_model = task_type.model.load_adapter_base(base, folder)
    else:
        base_model = load_plain(base)
    return PeftModel.from_pretrained(base_model, str(folder)).eval()


def resolve_checkpoint(checkpoint: str | Path, yard: Yard) -> str:
    """The path a verb loads for ``checkpoint``: a GGUF file's imported folder, its task type
    recorded (:func:`tuneyard.models.gguf.resolve_model_path`); anything else as given."""
    from tuneyard.models.gguf import resolve_model_path

    return resolve_model_path(checkpoint, yard, task_type_of=infer_task_type)


def task_type_of_model(path: str | Path) -> TaskType | None:
    """The task type a model folder records, else the one :func:`infer_task_type` finds; None if neither."""
    name = recorded_task_type(path) or infer_task_type(path)
    return get_task_type(name) if name else None


def recorded_task_type(path: str | Path) -> str | None:
    """The ``task_type`` in the manifest of the model folder at ``path`` (or of the run holding it)."""
    if is_hub_id(path):
        return None
    folder = resolve_model_folder(path)
    for candidate in (folder, folder.parent):
        found = _manifest_field(candidate, "task_type")
        if found:
            return str(found)
    return None


def infer_task_type(path: str | Path) -> str | None:
    """The task type of a folder that records none: the one function that guesses it.

    From the model class the folder names (``config.json``'s ``architectures``, a
    compressed folder's ``model_class``), claimed by exactly one task type's auto class;
    for a LoRA adapter, also from its PEFT task type. None when nothing decides it (a
    bare encoder such as ``BertModel`` is any classifier's base).
    """
    if is_hub_id(path):
        return _claimed_by(_architectures_of_hub(str(path)))
    folder = resolve_model_folder(path)
    if (folder / ADAPTER_CONFIG).is_file():
        return _adapter_task_type(folder)
    return _claimed_by(_architectures(folder))


def infer_task_type_quietly(path: Path) -> str | None:
    """:func:`infer_task_type` for a yard walk: a folder that is no loadable model folder (an
    export's GGUF, a run that saved no model yet) is undecided rather than an error."""
    from tuneyard.errors import TuneyardError

    try:
        return infer_task_type(path)
    except TuneyardError:
        return None


def _claimed_by(architectures: list[str]) -> str | None:
    for architecture in architectures:
        claiming = [name for name in TASK_TYPES if get_task_type(name).model.claims(architecture)]
        if len(claiming) == 1:
            return claiming[0]
    return None


def _adapter_task_type(folder: Path) -> str | None:
    config = _read_json(folder / ADAPTER_CONFIG)
    peft_task_type = str(config.get("task_type") or "").removeprefix("TaskType.")
    tagged = [name for name in TASK_TYPES if get_task_type(name).model.peft_task_type == peft_task_type]
    if len(tagged) == 1:
        return tagged[0]
    base = adapter_base(folder)
    if not isinstance(base, Path):
        return None
    found = recorded_task_type(base) or infer_task_type(base)
    if found or not tagged:
        return found
    # A bare encoder's base (BertModel) and a tag several task types share (SEQ_CLS: text and
    # audio classifiers): the one whose auto class builds the base's model type.
    model_type = str(_read_json(base / "config.json").get("model_type") or "")
    building = [name for name in tagged if get_task_type(name).model.builds(model_type)]
    return building[0] if len(building) == 1 else None


def _architectures(folder: Path) -> list[str]:
    # A tuneyard compressed folder names its class in its info file; FlashSVD's does not.
    model_class = _read_json(folder / COMPRESSION_INFO_FILE).get("model_class")
    if is_compressed_folder(folder) and model_class:
        return [str(model_class)]
    return list(_read_json(folder / "config.json").get("architectures") or [])


def _architectures_of_hub(model_id: str) -> list[str]:
    from tuneyard.models.loading import load_config

    return list(getattr(load_config(model_id), "architectures", None) or [])


def _manifest_field(folder: Path, field: str) -> Any:
    return _read_json(folder / MANIFEST_FILE).get(field)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
