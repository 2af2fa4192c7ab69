"""``tuneyard export``: a model as one GGUF file (llama.cpp's own tools) or a plain safetensors folder.

What is exported is a plain Hugging Face folder: a LoRA run is merged first and a
compressed model is made dense first (neither format has adapter or low-rank layers),
each recorded as its own ``merged`` artifact, so the export's lineage reads base -> run
-> merged -> export.

- ``--format gguf``: llama.cpp's ``convert_hf_to_gguf.py`` (:mod:`.converter`) writes the
  file at the asked type, or at F16 for llama.cpp's quantizer (:mod:`.quantize`) to
  quantize (``q4_k_m``, ...), into ``exports/{name}_{quant}/``. The manifest records the
  source, the type, the converter (and quantizer), the tensor count and the file's size.
  A model with a vision tower (its config has a ``vision_config``) also gets its
  multimodal projector, ``mmproj-{name}-f16.gguf`` (the converter's ``--mmproj``: vision
  tower and connector at F16, what llama.cpp's ``mtmd`` loads beside the text model),
  in the same folder; the text file alone is at the asked type.
- ``--format safetensors``: the folder's weights, config, generation config and
  tokenizer (chat template included) are copied into ``exports/{name}_safetensors/``, for
  runtimes that read Hugging Face folders (vLLM, TGI, MLX, transformers itself).

A model the converter or quantizer cannot handle is an ``error:`` naming its reason, and
nothing is filed.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import Field, model_validator

from tuneyard.config import Cli, StrictModel
from tuneyard.errors import ConfigError, ExportError
from tuneyard.export.converter import PROJECTOR_PREFIX, Converter, convert, find_converter, has_vision_tower
from tuneyard.export.merge import MergeOptions, find_merged, merge_model
from tuneyard.export.quantize import QUANTIZER_INPUT, QUANTS, quant_choices, quantize, quantizer_version
from tuneyard.yard.root import Yard

if TYPE_CHECKING:
    from tuneyard.yard.manifest import Manifest

DEFAULT_QUANT = "f16"
# The files of a Hugging Face model folder a runtime reads (as loading.HUB_SNAPSHOT_FILES,
# plus a chat template saved on its own); the source's manifest.json is the yard's, not copied.
FOLDER_FILES = ("*.json", "*.safetensors", "*.txt", "*.model", "*.jinja")
PLAIN = {"gguf": "GGUF has", "safetensors": "plain folders for other runtimes have"}
# The projector is written at F16 whatever --quant says: it is small next to the text model,
# and F16 is the type llama.cpp's own multimodal models are published with.
PROJECTOR_TYPE = "f16"


class ExportOptions(StrictModel):
    """What one export depends on; saved in the manifest."""

    checkpoint: Annotated[str, Cli(path=True, aliases=("--model",))] = Field(
        description="A model folder, a LoRA run or a compressed model."
    )
    format: Literal["gguf", "safetensors"] = Field(
        default="gguf",
        description="gguf (one file for llama.cpp) or safetensors (a plain Hugging Face folder).",
    )
    quant: str | None = Field(
        default=None, description=f"GGUF tensor type (default {DEFAULT_QUANT}): {quant_choices()}"
    )
    name: str | None = Field(
        default=None,
        description="exports/{name}_{quant}/ or {name}_safetensors/ (default: the model's or run's).",
    )
    output_dir: Annotated[str | None, Cli(path=True)] = Field(
        default=None, description="Write here instead of the yard layout path."
    )

    @model_validator(mode="after")
    def _quant_fits_format(self) -> ExportOptions:
        if self.format == "safetensors":
            if self.quant is not None:
                raise ConfigError(
                    f"--quant {self.quant} is a GGUF type; a safetensors export keeps the model's weights.",
                    "Leave --quant out, or use --format gguf.",
                )
        elif self.quant is None:
            self.quant = DEFAULT_QUANT
        elif self.quant not in QUANTS:
            raise ConfigError(
                f"unknown GGUF type --quant {self.quant!r}.", f"Choose one of {quant_choices()}."
            )
        return self


@dataclass
class ExportResult:
    """What ``export_model`` made."""

    path: Path
    file: Path  # what a runtime is pointed at: the GGUF file, or the safetensors folder
    tensors: int
    file_bytes: int  # the GGUF file's size, or the sum of the folder's files (its manifest aside)
    seconds: float
    source: Path  # the plain model folder that was exported
    notes: list[str] = field(default_factory=list)
    projector: Path | None = None  # a vision-language model's mmproj GGUF, beside ``file``
    projector_bytes: int = 0


def export_model(options: ExportOptions, yard: Yard) -> ExportResult:
    """Export ``options.checkpoint`` (merged or made dense first, if need be) and file it."""
    from tuneyard.models.compressed_folder import is_compressed_folder
    from tuneyard.models.loading import ADAPTER_CONFIG, resolve_model_folder

    started = time.perf_counter()
    folder = resolve_model_folder(options.checkpoint)
    notes: list[str] = []
    # Everything that can be missing is looked for before a merge or conversion starts.
    quantizer = quantizer_version() if options.quant and QUANTS[options.quant].quantized else None
    converter = find_converter() if options.format == "gguf" else None
    if (folder / ADAPTER_CONFIG).is_file() or is_compressed_folder(folder):
        dense = is_compressed_folder(folder)
        source = (
            find_merged(yard, folder, dense)
            or merge_model(MergeOptions(checkpoint=str(folder), dense=dense), yard).path
        )
        notes.append(
            f"exported {yard.relative(source)}: {'the dense form' if dense else 'the merge'} of {folder} "
            f"({PLAIN[options.format]} no {'low-rank' if dense else 'adapter'} layers)"
        )
    else:
        source = folder
    if converter is None:
        path, file, metrics = _write_safetensors(yard, options, folder, source)
    else:
        path, file, metrics = _write_gguf(yard, options, folder, source, converter, quantizer, notes)
    seconds = time.perf_counter() - started
    projector = find_projector(file)
    return ExportResult(
        path,
        file,
        metrics["tensors"],
        metrics["file_bytes"],
        seconds,
        source,
        notes,
        projector,
        metrics.get("projector_bytes", 0),
    )


def _write_gguf(
    yard: Yard,
    options: ExportOptions,
    origin: Path,
    source: Path,
    converter: Converter,
    quantizer: str | None,
    notes: list[str],
) -> tuple[Path, Path, dict[str, Any]]:
    from tuneyard.task_types.model_card import write_model_card

    quant = QUANTS[str(options.quant)]
    tools = {"converter": converter.version}
    if quantizer:
        tools |= {"quantizer": quantizer, "quantized_from": QUANTIZER_INPUT}
    name, target, manifest = _manifest(yard, options, origin, source, quant.name, tools)
    with yard.create(manifest, target) as writer:
        started = time.perf_counter()
        file = writer.path / f"{name}-{quant.name}.gguf"
        if quant.quantized:
            intermediate = writer.path / f"{name}-{QUANTIZER_INPUT}.intermediate.gguf"
            try:
                convert(converter, source, intermediate, QUANTIZER_INPUT)
                notes += quantize(intermediate, file, quant)
            finally:
                intermediate.unlink(missing_ok=True)  # only the asked type is filed
        else:
            convert(converter, source, file, quant.name)
        manifest.metrics.update(file_bytes=file.stat().st_size, tensors=gguf_tensor_count(file))
        if has_vision_tower(source):
            projector = writer.path / f"{PROJECTOR_PREFIX}{name}-{PROJECTOR_TYPE}.gguf"
            convert(converter, source, projector, PROJECTOR_TYPE, projector=True)
            manifest.metrics.update(
                projector_bytes=projector.stat().st_size, projector_tensors=gguf_tensor_count(projector)
            )
            manifest.config["projector"] = {"file": projector.name, "type": PROJECTOR_TYPE}
        manifest.metrics["conversion_seconds"] = round(time.perf_counter() - started, 1)
        write_model_card(yard, manifest, writer.path)
    return writer.final_path, writer.final_path / file.name, manifest.metrics


def _write_safetensors(
    yard: Yard, options: ExportOptions, origin: Path, source: Path
) -> tuple[Path, Path, dict[str, Any]]:
    from tuneyard.task_types.model_card import CARD_FILE, write_model_card
    from tuneyard.yard.manifest import MANIFEST_FILE

    files = sorted(  # the source's manifest and card describe the source; the export gets its own
        {path for pattern in FOLDER_FILES for path in source.glob(pattern) if path.is_file()}
        - {source / MANIFEST_FILE, source / CARD_FILE}
    )
    weights = [path for path in files if path.suffix == ".safetensors"]
    if not weights:
        raise ExportError(
            f"{source} has no .safetensors weights to export.",
            "Re-save the model with save_pretrained (safetensors is its default), then export that folder.",
        )
    _, target, manifest = _manifest(yard, options, origin, source, "safetensors", {})
    with yard.create(manifest, target) as writer:
        for path in files:
            # copies: a user may edit a config; publishing links the weights to the yard's
            # read-only shared objects (tuneyard.yard.objects)
            shutil.copyfile(path, writer.path / path.name)
        manifest.metrics.update(
            file_bytes=sum(path.stat().st_size for path in files), tensors=safetensors_tensor_count(weights)
        )
        write_model_card(yard, manifest, writer.path)
    return writer.final_path, writer.final_path, manifest.metrics


def _manifest(
    yard: Yard, options: ExportOptions, origin: Path, source: Path, method: str, tools: dict[str, str]
) -> tuple[str, Path, Manifest]:
    """The export's name, target folder ``exports/{name}_{method}`` and manifest."""
    from tuneyard.export.merge import artifact_folder, task_of
    from tuneyard.models.layout import arch_of
    from tuneyard.models.loading import load_config
    from tuneyard.task_types.model_loading import task_type_of_model
    from tuneyard.yard.layout import model_display_name
    from tuneyard.yard.manifest import Manifest

    name = options.name or model_display_name(artifact_folder(origin, yard.storage))
    target = yard.target_path("export", output_dir=options.output_dir, name=f"{name}_{method}")
    task, dataset = task_of(artifact_folder(source, yard.storage), yard.storage)
    task_type = task_type_of_model(source)
    manifest = Manifest(
        kind="export",
        name=target.name,
        task=task,
        task_type=task_type.name if task_type else None,
        dataset=dataset,
        arch=arch_of(load_config(source).model_type),
        method=method,
        parents=[yard.parent_link(artifact_folder(source, yard.storage), "source")],
        config=options.model_dump() | tools | {"source": yard.relative(source)},
    )
    return name, target, manifest


def find_projector(file: Path) -> Path | None:
    """The multimodal projector filed beside a GGUF export's text model, if it has one."""
    found = sorted(file.parent.glob(f"{PROJECTOR_PREFIX}*.gguf"))
    return found[0] if found else None


def gguf_tensor_count(file: Path) -> int:
    """Tensors in a GGUF file, from its header (magic, version, tensor count; little-endian).

    ``gguf.GGUFReader`` would parse every metadata field first, the whole vocabulary
    included: seconds for a 49k-token tokenizer, for one number the header holds.
    """
    import struct

    from gguf import GGUF_MAGIC

    with open(file, "rb") as handle:
        magic, _version, tensors = struct.unpack("<IIQ", handle.read(16))
    if magic != GGUF_MAGIC:
        raise ExportError(f"{file} is not a GGUF file (its first bytes are not GGUF's magic).")
    return int(tensors)


def safetensors_tensor_count(files: list[Path]) -> int:
    """Tensors in safetensors files, read from their headers."""
    from safetensors import safe_open

    count = 0
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            count += len(handle.keys())
    return count
