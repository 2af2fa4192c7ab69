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

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.yard.manifest import Manifest, Parent, list_files, write_manifest

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


def write_model_folder(
    run: RunWriter, subfolder: str, model: Any, tokenizer: Any, parent: ParentModel, metrics: dict[str, Any]
) -> Path:
    """Atomically (re)write ``run/<subfolder>`` as a model artifact.

    Its manifest describes it for ``tuneyard.load`` and lineage; the index lists the
    run, not its parts (the yard indexes no manifest nested inside another artifact).
    """
    run_manifest = run.manifest
    target = run.path / subfolder
    manifest = Manifest(
        kind="model",
        name=f"{run_manifest.name}/{subfolder}",
        path=run.yard.relative(target),
        status="complete",
        arch=run_manifest.arch,
        method=run_manifest.method,
        rank=run_manifest.rank,
        strategy=run_manifest.strategy,
        task=run_manifest.task,
        dataset=run_manifest.dataset,
        project=run_manifest.project,
        parents=[Parent(id=run_manifest.id, path=run_manifest.path, role="run"), parent.lineage()],
        config=run_manifest.config,
        metrics=metrics,
    )
    with run.subfolder(subfolder) as temp:
        save_model(model, tokenizer, temp, parent)
        manifest.files = list_files(temp)
        write_manifest(temp, manifest)
    return target
