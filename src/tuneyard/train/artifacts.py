"""``best/`` and ``last/``: complete, loadable models in the run folder.

Each is published through :meth:`RunWriter.subfolder` (a temporary sibling renamed into
place), holds the weights as safetensors, ``config.json``, the tokenizer and a
``manifest.json`` of kind ``model`` whose parent is the run, a model card (``README.md``,
in place of PEFT's template) and loads with ``tuneyard.load(path)``:

* a plain model: ``save_pretrained`` output;
* a LoRA model: the adapter (``adapter_config.json`` whose ``base_model_name_or_path``
  is the base's hub id or its path relative to the yard's root, the adapter and head
  weights) plus the classifier's ``config.json`` for the label names;
* a compressed model: the compressed-folder format (``compression_info.json`` with the
  factor ranks), so it loads without the original dense model.

Where the Trainer has just saved a checkpoint of the same weights, the folder is built
from hard links to that checkpoint's model files plus the few small files the format
adds, instead of serialising the model a second time: the weights are written once per
evaluation, which matters for large models. A written file is never modified in place
(folders are replaced whole, and a resumed run clears the Trainer's staging first), so
sharing it is safe.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.models.loading import ADAPTER_CONFIG
from tuneyard.task_types.model_card import CARD_FILE, write_model_card
from tuneyard.yard.manifest import Manifest, Parent, list_files, read_manifest, write_manifest

if TYPE_CHECKING:
    from tuneyard.models.checkpoint import StartingCheckpoint
    from tuneyard.yard.root import Yard
    from tuneyard.yard.writer import RunWriter

# What a Trainer checkpoint holds besides the model: optimizer, scheduler, scaler, RNG and
# trainer state, the arguments (transformers.trainer's *_NAME constants).
_TRAINER_STATE = re.compile(
    r"^(optimizer\.pt|scheduler\.pt|scaler\.pt|trainer_state\.json|training_args\.bin|rng_state(_\d+)?\.pth)$"
)
# A checkpoint whose weights are in none of these (DeepSpeed or FSDP shards, pickled .bin
# weights) is not linked: the folder is written from the live model instead.
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors")


def name_adapter_base(model: Any, parent: StartingCheckpoint) -> None:
    """Point a LoRA model's ``adapter_config.json`` at its base model's absolute path.

    Set before training, so every checkpoint the Trainer writes loads its base from
    where this run found it (and PEFT, saving, can compare the base's vocabulary).
    ``best/`` and ``last/`` record it relative to the yard instead (:func:`record_adapter_base`).
    """
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model.peft_config["default"].base_model_name_or_path = parent.source


def record_adapter_base(yard: Yard, folder: Path) -> str | None:
    """Make an adapter's base in ``folder`` a path relative to the yard's root, when it is inside it.

    Like the yard's parent links, so a yard moved or copied elsewhere keeps its adapters:
    tuneyard resolves the path against the root holding the adapter
    (:func:`tuneyard.models.loading.adapter_base`), PEFT alone against the working
    directory, which the cards' snippets say is the yard's. A hub id, or a folder outside
    the yard, stays as it is. The file is replaced, never edited: it may be a link.

    Returns the base's absolute path when it was made relative, for the folder's manifest
    (``adapter_base``): an adapter copied out of its yard has no yard root to resolve
    against, and finds its base there.
    """
    config_file = folder / ADAPTER_CONFIG
    if not config_file.is_file():
        return None
    config = json.loads(config_file.read_text())
    base = Path(str(config.get("base_model_name_or_path") or ""))
    if not base.is_absolute() or not base.resolve().is_relative_to(yard.root):
        return None
    config["base_model_name_or_path"] = yard.relative(base)
    yard.storage.write_text(config_file, json.dumps(config, indent=2, sort_keys=True) + "\n")
    return base.resolve().as_posix()


def _compression_info_for(model: Any, parent: StartingCheckpoint) -> Any:
    """The parent's ``compression_info.json`` re-keyed to this classifier's module names."""
    from tuneyard.models.compressed_folder import compression_info_of
    from tuneyard.models.lowrank import lowrank_layers

    info = compression_info_of(Path(parent.source), model)
    layers = {}
    for name, _ in lowrank_layers(model):
        key = next(k for k in info.layers if name == k or name.endswith("." + k))
        layers[name] = info.layers[key]
    return info.model_copy(update={"model_class": type(model).__name__, "layers": layers, "head": "task"})


def save_model(model: Any, tokenizer: Any, folder: Path, parent: StartingCheckpoint) -> None:
    """Write ``model`` into ``folder`` in the format its kind loads from."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        name_adapter_base(model, parent)
        model.save_pretrained(str(folder))
        model.get_base_model().config.save_pretrained(str(folder))
    elif parent.compressed:
        from tuneyard.models.compressed_folder import write_compressed_folder

        write_compressed_folder(model, None, _compression_info_for(model, parent), folder)
    else:
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def _add_format_files(model: Any, folder: Path, parent: StartingCheckpoint) -> None:
    """The small files a model folder needs beyond what the Trainer's checkpoint holds."""
    from peft import PeftModel

    if isinstance(model, PeftModel):  # the classifier's config, for its label names
        model.get_base_model().config.save_pretrained(str(folder))
    elif parent.compressed:
        from tuneyard.models.compressed_folder import COMPRESSION_INFO_FILE

        info = _compression_info_for(model, parent)
        (folder / COMPRESSION_INFO_FILE).write_text(info.model_dump_json(indent=2) + "\n")


def checkpoint_model_files(checkpoint: Path) -> list[str] | None:
    """The model's files in a Trainer checkpoint, not its training state; None: weights not in safetensors."""
    names = sorted(entry.name for entry in checkpoint.iterdir() if entry.is_file())
    if not any(name in names for name in _WEIGHT_FILES):
        return None
    return [name for name in names if not _TRAINER_STATE.match(name) and name != CARD_FILE]


def _link_files(origin: Path, names: list[str], folder: Path) -> None:
    """Hard links in ``folder`` to ``origin``'s files (copies where the file system has no hard links)."""
    for name in names:
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(origin / name, target)
        except OSError:
            shutil.copy2(origin / name, target)


def model_manifest(run: RunWriter, subfolder: str, metrics: dict[str, Any]) -> Manifest:
    """The ``kind: model`` manifest of ``run/<subfolder>``; its parents are the run and the run's own.

    The index lists the run, not its parts (the yard indexes no manifest nested
    inside another artifact), so this manifest serves ``tuneyard.load`` and lineage.
    """
    run_manifest = run.manifest
    return Manifest(
        kind="model",
        name=f"{run_manifest.name}/{subfolder}",
        path=run.yard.relative(run.path / subfolder),
        status="complete",
        arch=run_manifest.arch,
        method=run_manifest.method,
        rank=run_manifest.rank,
        strategy=run_manifest.strategy,
        task=run_manifest.task,
        task_type=run_manifest.task_type,
        dataset=run_manifest.dataset,
        project=run_manifest.project,
        parents=[Parent(id=run_manifest.id, path=run_manifest.path, role="run"), *run_manifest.parents],
        config=run_manifest.config,
        metrics=metrics,
        versions=run_manifest.versions,
    )


@contextlib.contextmanager
def _model_folder(run: RunWriter, subfolder: str, metrics: dict[str, Any]) -> Iterator[Path]:
    """A temporary folder to fill, published as ``run/<subfolder>`` with its card and manifest once filled."""
    manifest = model_manifest(run, subfolder, metrics)
    with run.subfolder(subfolder) as temp:
        yield temp
        manifest.adapter_base = record_adapter_base(run.yard, temp)
        write_model_card(run.yard, manifest, temp)
        manifest.files = list_files(temp)
        write_manifest(temp, manifest, run.yard.storage)


def write_model_folder(
    run: RunWriter,
    subfolder: str,
    model: Any,
    tokenizer: Any,
    parent: StartingCheckpoint,
    metrics: dict[str, Any],
) -> Path:
    """Atomically (re)write ``run/<subfolder>`` from the live model."""
    with _model_folder(run, subfolder, metrics) as temp:
        save_model(model, tokenizer, temp, parent)
    return run.path / subfolder


def model_folder_from_checkpoint(
    run: RunWriter,
    subfolder: str,
    checkpoint: Path,
    model: Any,
    parent: StartingCheckpoint,
    metrics: dict[str, Any],
) -> Path | None:
    """``run/<subfolder>`` from the model files of a Trainer checkpoint of the live model's weights.

    Returns None, writing nothing, when the checkpoint's weights are not in a format
    the folder can share (the caller writes from the live model instead).
    """
    names = checkpoint_model_files(checkpoint)
    if names is None:
        return None
    with _model_folder(run, subfolder, metrics) as temp:
        _link_files(checkpoint, names, temp)
        _add_format_files(model, temp, parent)
    return run.path / subfolder


def link_model_folder(run: RunWriter, source: str, subfolder: str, metrics: dict[str, Any]) -> Path:
    """``run/<subfolder>`` as hard links to ``run/<source>``'s files (same weights, no second write).

    Used for ``last/`` when the final evaluation was also the best.
    """
    origin = run.path / source
    names = [entry.path for entry in read_manifest(origin, run.yard.storage).files if entry.path != CARD_FILE]
    with _model_folder(run, subfolder, metrics) as temp:
        _link_files(origin, names, temp)
    return run.path / subfolder
