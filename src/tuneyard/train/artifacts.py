"""``best/`` and ``last/``: complete, loadable models written from the live training model.

Each is written through :meth:`RunWriter.subfolder` (a temporary sibling renamed into
place), holds the weights as safetensors, ``config.json``, the tokenizer and a
``manifest.json`` of kind ``model`` whose parent is the run, and loads with
``tuneyard.load(path)``:

* a plain model: ``save_pretrained`` output;
* a LoRA model: the adapter (``adapter_config.json`` whose ``base_model_name_or_path``
  is the base model's absolute path, the adapter and head weights) plus the
  classifier's ``config.json`` for the label names;
* a compressed model: the compressed-folder format (``compression_info.json`` with the
  factor ranks), so it loads without the original dense model.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.yard.manifest import Manifest, Parent, list_files, read_manifest, write_manifest

if TYPE_CHECKING:
    from tuneyard.train.parent import ParentModel
    from tuneyard.yard.writer import RunWriter


def _compression_info_for(model: Any, parent: ParentModel) -> Any:
    """The parent's ``compression_info.json`` re-keyed to this classifier's module names."""
    from tuneyard.models.compressed_folder import read_compression_info
    from tuneyard.models.lowrank import lowrank_layers

    info = read_compression_info(Path(parent.source))
    layers = {}
    for name, _ in lowrank_layers(model):
        key = next(k for k in info.layers if name == k or name.endswith("." + k))
        layers[name] = info.layers[key]
    return info.model_copy(update={"model_class": type(model).__name__, "layers": layers, "head": "task"})


def save_model(model: Any, tokenizer: Any, folder: Path, parent: ParentModel) -> None:
    """Write ``model`` into ``folder`` in the format its kind loads from."""
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model.peft_config["default"].base_model_name_or_path = parent.source
        model.save_pretrained(str(folder))
        model.get_base_model().config.save_pretrained(str(folder))
    elif parent.compressed:
        from tuneyard.models.compressed_folder import write_compressed_folder

        write_compressed_folder(model, None, _compression_info_for(model, parent), folder)
    else:
        model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


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
        dataset=run_manifest.dataset,
        project=run_manifest.project,
        parents=[Parent(id=run_manifest.id, path=run_manifest.path, role="run"), *run_manifest.parents],
        config=run_manifest.config,
        metrics=metrics,
    )


def write_model_folder(
    run: RunWriter, subfolder: str, model: Any, tokenizer: Any, parent: ParentModel, metrics: dict[str, Any]
) -> Path:
    """Atomically (re)write ``run/<subfolder>`` from the live model."""
    manifest = model_manifest(run, subfolder, metrics)
    with run.subfolder(subfolder) as temp:
        save_model(model, tokenizer, temp, parent)
        manifest.files = list_files(temp)
        write_manifest(temp, manifest)
    return run.path / subfolder


def link_model_folder(run: RunWriter, source: str, subfolder: str, metrics: dict[str, Any]) -> Path:
    """``run/<subfolder>`` as hard links to ``run/<source>``'s files (same weights, no second write).

    Used for ``last/`` when the final evaluation was also the best: the files of a
    written folder are never modified in place (folders are replaced whole), so
    sharing them is safe. Falls back to copying where hard links are not supported.
    """
    manifest = model_manifest(run, subfolder, metrics)
    origin = run.path / source
    with run.subfolder(subfolder) as temp:
        for entry in read_manifest(origin).files:
            target = temp / entry.path
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(origin / entry.path, target)
            except OSError:
                shutil.copy2(origin / entry.path, target)
        manifest.files = list_files(temp)
        write_manifest(temp, manifest)
    return run.path / subfolder
