"""``tuneyard merge``: a LoRA run or a compressed model as one plain Hugging Face model folder.

A LoRA adapter is folded into its base with PEFT's ``merge_and_unload`` (``W + B A *
scale`` per adapted layer); a compressed model's low-rank layers become dense again
with ``--dense`` (``left @ right``, in the layer type the class had: ``nn.Linear`` or
GPT-2's ``Conv1D``). The result is the base class with plain weights, saved with
safetensors, its config, generation config and tokenizer (chat template included), as
a ``merged`` artifact at ``models/merged/{arch}/{name}`` whose parents are the source
(the run, or the compressed model) and the base. A run of ``--strategy adapter`` with
transformers' attention adapters is refused: their ReLU keeps them out of any weight.

The merge checks itself before anything is written: the merged model's logits on a
probe input (its task type's :meth:`~tuneyard.task_types.base.ModelRole.probe_inputs`:
a sentence for a text model) must equal the source model's (to 1e-4 of their scale);
a mismatch is an error and nothing is filed. The merged model records its source's
task type.

The merge computes in float32, whatever the run trained in, and the merged weights are
saved in the dtype the run loaded its base in (``--dtype`` of finetune, recorded in its
manifest; float32 for a run that records none) or the one ``--dtype`` asks for: a
bfloat16 run merges into bfloat16 weights rounded once, a QLoRA run into its base
loaded unquantized (never into the 4-bit weights it trained over).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from tuneyard.config import Cli, StrictModel
from tuneyard.errors import ExportError
from tuneyard.models.dtypes import DEFAULT_DTYPE, DtypeName, LoadDtype, dtype_name, torch_dtype
from tuneyard.models.layout import ATTENTION_ADAPTER_DIM
from tuneyard.yard.root import Yard

if TYPE_CHECKING:
    from tuneyard.task_types.base import TaskType
    from tuneyard.yard.storage import Storage

TOLERANCE = 1e-4  # of the largest probe logit's magnitude


class MergeOptions(StrictModel):
    """What one merge depends on; saved in the manifest."""

    checkpoint: Annotated[str, Cli(path=True, aliases=("--model",))] = Field(
        description="A LoRA run (its folder or best/), an adapter, or a compressed model."
    )
    dense: bool = Field(
        default=False, description="Multiply a compressed model's factors back into dense layers."
    )
    dtype: LoadDtype = Field(
        default="auto",
        description="Dtype of the merged weights (auto: the one the run trained in, as recorded).",
    )
    name: str | None = Field(
        default=None, description="Folder name under models/merged/{arch}/ (default: the run's)."
    )
    output_dir: Annotated[str | None, Cli(path=True)] = Field(
        default=None, description="Write here instead of the yard layout path."
    )


@dataclass
class MergeResult:
    """What ``merge_model`` made."""

    path: Path
    source: str  # "lora" or "lowrank"
    layers: int  # adapted (or low-rank) layers folded in
    params: int
    max_logit_difference: float
    seconds: float
    model: Any = None


def merge_model(options: MergeOptions, yard: Yard) -> MergeResult:
    """Fold ``options.checkpoint``'s adapter (or, with ``dense``, its factors) in and file the model."""
    from tuneyard.models.compressed_folder import is_compressed_folder
    from tuneyard.models.loading import ADAPTER_CONFIG, adapter_base, resolve_model_folder
    from tuneyard.task_types.model_loading import resolve_checkpoint

    started = time.perf_counter()
    folder = resolve_model_folder(resolve_checkpoint(options.checkpoint, yard))  # on S3: fetched here
    if (folder / ADAPTER_CONFIG).is_file():
        source, base = "lora", adapter_base(folder)
    elif is_compressed_folder(folder):
        if not options.dense:
            raise ExportError(
                f"{folder} is a compressed model: its low-rank layers have no adapter to merge.",
                "Pass --dense to multiply each factor pair back into a dense layer.",
            )
        source, base = "lowrank", folder
    elif _has_attention_adapters(folder):
        raise ExportError(
            f"{folder} has bottleneck adapters in its encoder layers (--strategy adapter: transformers' "
            "attention adapters, a ReLU between their two projections), which no weight of the base can "
            "absorb: they cannot be merged.",
            "Use the folder as it is: it is a complete model (eval, export and compress read it). "
            "A run that should merge: --strategy lora.",
        )
    else:
        raise ExportError(
            f"{folder} holds neither a LoRA adapter nor low-rank layers: there is nothing to merge.",
            "Merge a LoRA run (its folder or best/), or a compressed model with --dense.",
        )
    _refuse_quantized(base)
    task_type = _task_type(folder)
    options = options.model_copy(update={"dtype": merged_dtype(options.dtype, folder, yard.storage)})
    model, tokenizer, probe = _load_with_probe(folder, task_type)
    before = _probe_logits(model, probe)
    merged, layers = _fold(model, source)
    difference = _check_same_outputs(before, _probe_logits(merged, probe), folder)
    merged = merged.to(torch_dtype(options.dtype))
    path = _write(
        yard, options, folder, base, (merged, tokenizer), source, layers, difference, task_type.name
    )
    params = sum(parameter.numel() for parameter in merged.parameters())
    return MergeResult(path, source, layers, params, difference, time.perf_counter() - started, merged)


def _has_attention_adapters(folder: Path) -> bool:
    """Whether the folder's config builds transformers' (non-linear) attention adapters into its layers."""
    config = folder / "config.json"
    return config.is_file() and json.loads(config.read_text()).get(ATTENTION_ADAPTER_DIM) is not None


def merged_dtype(requested: LoadDtype, folder: Path, storage: Storage) -> DtypeName:
    """``--dtype``, or for ``auto`` the dtype the source's run recorded (float32 when it records none)."""
    from tuneyard.yard.manifest import read_manifest_if_any

    if requested != "auto":
        return requested
    manifest = read_manifest_if_any(artifact_folder(folder, storage), storage)
    if manifest is None:
        return DEFAULT_DTYPE
    return dtype_name(manifest.config.get("dtype")) or DEFAULT_DTYPE


def _refuse_quantized(base: Path | str) -> None:
    """A quantized base has no full-precision weights to add ``B A`` to."""
    from tuneyard.models.loading import load_config

    quantization = getattr(load_config(base), "quantization_config", None)
    if quantization:
        method = quantization.get("quant_method") if isinstance(quantization, dict) else quantization
        raise ExportError(
            f"the base {base} is quantized ({method}): adding the adapter to rounded weights loses it.",
            "Merge into the full-precision base (float32 or bfloat16), then quantize the merged model.",
        )


def _task_type(folder: Path) -> TaskType:
    """The source's task type (recorded, else inferred once); merge needs it for the probe."""
    from tuneyard.task_types.model_loading import task_type_of_model

    task_type = task_type_of_model(folder)
    if task_type is None:
        raise ExportError(
            f"{folder} records no task type and none can be told from its model class.",
            "Merge a model tuneyard trained or compressed (its manifest records the task type), or one "
            "whose config.json names its model class (architectures).",
        )
    return task_type


def _load_with_probe(folder: Path, task_type: TaskType) -> tuple[Any, Any, dict[str, Any]]:
    """The source model (eval mode, in float32: the merge rounds once, when it saves), its tokenizer
    and the task type's probe inputs."""
    from tuneyard.task_types.model_loading import load

    model = load(folder).float()
    tokenizer = task_type.model.load_processor(folder)
    return model, tokenizer, task_type.model.probe_inputs(tokenizer)


def _probe_logits(model: Any, probe: dict[str, Any]) -> Any:
    import torch

    with torch.inference_mode():
        return model(**probe).logits.float()


def _fold(model: Any, source: str) -> tuple[Any, int]:
    """The plain model and how many layers were folded into it."""
    if source == "lowrank":
        from tuneyard.models.lowrank import restore_dense

        return model, restore_dense(model)
    from peft.tuners.lora import LoraLayer

    layers = sum(isinstance(module, LoraLayer) for module in model.modules())
    return model.merge_and_unload(), layers


def _check_same_outputs(before: Any, after: Any, folder: Path) -> float:
    """The largest logit difference on the probe; an error beyond the tolerance.

    A non-finite difference fails too (written ``not <=`` so NaN does): weights that
    diverged to NaN or inf give logits no merge can be checked against.
    """
    difference = float((before - after).abs().max())
    scale = max(1.0, float(before.abs().max()))
    if not difference <= TOLERANCE * scale:
        raise ExportError(
            f"the merged model's logits differ from {folder}'s by up to {difference:.3g} on the probe "
            f"(allowed {TOLERANCE * scale:.3g}); nothing was written.",
            "If the source's weights hold NaN or inf (a run that diverged), merge an earlier checkpoint; "
            "otherwise this is a bug in the merge or a layer type it does not know: "
            "please report it with the model.",
        )
    return difference


def _write(
    yard: Yard,
    options: MergeOptions,
    folder: Path,
    base: Path | str,
    converted: tuple[Any, Any],
    source: str,
    layers: int,
    difference: float,
    task_type: str,
) -> Path:
    from tuneyard.models.layout import arch_of
    from tuneyard.task_types.model_card import write_model_card
    from tuneyard.yard.layout import model_display_name
    from tuneyard.yard.manifest import Manifest

    merged, tokenizer = converted
    arch = arch_of(merged.config.model_type)
    origin = artifact_folder(folder, yard.storage)
    name = options.name or model_display_name(origin)
    target = yard.target_path("merged", output_dir=options.output_dir, arch=arch, name=name)
    parents = [yard.parent_link(origin, "adapter" if source == "lora" else "source")]
    if source == "lora":
        parents.append(yard.parent_link(base, "base"))
    task, dataset = task_of(origin, yard.storage)
    manifest = Manifest(
        kind="merged",
        name=target.name,
        arch=arch,
        method=source,
        task=task,
        task_type=task_type,
        dataset=dataset,
        parents=parents,
        config=options.model_dump(),
        metrics={
            "params": sum(parameter.numel() for parameter in merged.parameters()),
            "layers_merged": layers,
            "max_logit_difference": difference,
        },
    )
    merged.config.architectures = [type(merged).__name__]
    with yard.create(manifest, target) as writer:
        merged.save_pretrained(writer.path)
        tokenizer.save_pretrained(writer.path)
        write_model_card(yard, manifest, writer.path)
    return writer.final_path


def task_of(origin: Path, storage: Storage) -> tuple[str | None, str | None]:
    """The task and dataset the source artifact was trained on, carried to the merged model."""
    from tuneyard.yard.manifest import read_manifest_if_any

    manifest = read_manifest_if_any(origin, storage)
    return (manifest.task, manifest.dataset) if manifest is not None else (None, None)


def artifact_folder(folder: Path, storage: Storage) -> Path:
    """The yard artifact a model folder belongs to: the run whose best/ or last/ it is, else itself.

    Asked of the yard's storage: on S3 the run's manifest may be in the bucket only (its
    ``best/`` alone was fetched), and the merged model's parent is the run all the same.
    """
    from tuneyard.models.loading import RUN_SUBFOLDERS
    from tuneyard.yard.scan import read_manifest_text

    if folder.name in RUN_SUBFOLDERS and read_manifest_text(storage, folder.parent) is not None:
        return folder.parent
    return folder


def find_merged(yard: Yard, folder: Path, dense: bool) -> Path | None:
    """A complete earlier merge of ``folder`` (a run, an adapter or a compressed model), if the yard has one.

    Asked of the index, then checked on disk: the merged folder must still be there,
    complete, with the same source as its first parent and the same ``dense`` setting.
    """
    from tuneyard.errors import ManifestError
    from tuneyard.yard.manifest import read_manifest

    source = yard.relative(artifact_folder(folder, yard.storage))
    # An archived merge still has its files: reuse it rather than write the same weights again.
    for row in yard.query(kind="merged", status="complete", with_manifest=True, include_archived=True):
        parents = row["manifest"].get("parents") or []
        if not parents or parents[0].get("path") != source or row["manifest"]["config"].get("dense") != dense:
            continue
        merged = yard.absolute(row["path"])
        try:
            if (
                read_manifest(merged, yard.storage).status == "complete"
                and (merged / "config.json").is_file()
            ):
                return merged
        except ManifestError:
            continue
    return None
