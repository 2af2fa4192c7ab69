"""``tuneyard export --format gguf``: a model as one GGUF file, written by llama.cpp's own converter.

What is exported is a plain Hugging Face folder: a LoRA run is merged first and a
compressed model is made dense first (GGUF has no low-rank layer), each recorded as its
own ``merged`` artifact, so the export's lineage reads base -> run -> merged -> export.
llama.cpp's ``convert_hf_to_gguf.py`` (:mod:`.converter`) writes the file at the asked
type (``f16``, ``q8_0``, ``bf16``, ``f32``) into ``exports/{name}_{quant}/``; the
manifest records the source, the type, the converter, the tensor count and the file's
size (its sha256 is in the manifest's file list). A model the converter cannot handle is
an ``error:`` naming its reason, and nothing is filed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import Field

from tuneyard.config import StrictModel
from tuneyard.export.converter import Converter, convert, find_converter
from tuneyard.export.merge import MergeOptions, find_merged, merge_model
from tuneyard.yard.root import Yard

Quant = Literal["f16", "q8_0", "bf16", "f32"]


class ExportOptions(StrictModel):
    """What one export depends on; saved in the manifest."""

    checkpoint: str
    format: Literal["gguf"] = "gguf"
    quant: Quant = Field(default="f16", description="GGUF tensor type: f16, q8_0, bf16 or f32")
    name: str | None = None
    output_dir: str | None = None


@dataclass
class ExportResult:
    """What ``export_model`` made."""

    path: Path
    file: Path
    tensors: int
    seconds: float
    source: Path  # the plain model folder that was converted
    notes: list[str] = field(default_factory=list)


def export_model(options: ExportOptions, yard: Yard) -> ExportResult:
    """Convert ``options.checkpoint`` (merged or made dense first, if need be) and file the GGUF."""
    from tuneyard.models.compressed_folder import is_compressed_folder
    from tuneyard.models.loading import ADAPTER_CONFIG, resolve_model_folder

    started = time.perf_counter()
    folder = resolve_model_folder(options.checkpoint)
    notes: list[str] = []
    converter = find_converter()
    if (folder / ADAPTER_CONFIG).is_file() or is_compressed_folder(folder):
        dense = is_compressed_folder(folder)
        source = (
            find_merged(yard, folder, dense)
            or merge_model(MergeOptions(checkpoint=str(folder), dense=dense), yard).path
        )
        notes.append(
            f"exported {yard.relative(source)}: {'the dense form' if dense else 'the merge'} of {folder} "
            f"(GGUF has no {'low-rank' if dense else 'adapter'} layers)"
        )
    else:
        source = folder
    path, file, tensors = _write(yard, options, folder, source, converter)
    return ExportResult(path, file, tensors, time.perf_counter() - started, source, notes)


def _write(
    yard: Yard, options: ExportOptions, origin: Path, source: Path, converter: Converter
) -> tuple[Path, Path, int]:
    from tuneyard.export.merge import artifact_folder, task_of
    from tuneyard.models.family import family_for
    from tuneyard.models.loading import load_config
    from tuneyard.yard.layout import model_display_name
    from tuneyard.yard.manifest import Manifest

    name = options.name or model_display_name(artifact_folder(origin))
    target = yard.target_path("export", output_dir=options.output_dir, name=f"{name}_{options.quant}")
    task, dataset = task_of(artifact_folder(source))
    manifest = Manifest(
        kind="export",
        name=target.name,
        task=task,
        dataset=dataset,
        arch=family_for(load_config(source).model_type).arch,
        method=options.quant,
        parents=[yard.parent_link(artifact_folder(source), "source")],
        config=options.model_dump() | {"converter": converter.version, "source": yard.relative(source)},
    )
    with yard.create(manifest, target) as writer:
        started = time.perf_counter()
        file = writer.path / f"{name}-{options.quant}.gguf"
        convert(converter, source, file, options.quant)
        tensors = gguf_tensor_count(file)
        manifest.metrics.update(
            file_bytes=file.stat().st_size,
            tensors=tensors,
            conversion_seconds=round(time.perf_counter() - started, 1),
        )
    return writer.final_path, writer.final_path / file.name, tensors


def gguf_tensor_count(file: Path) -> int:
    """Tensors in a GGUF file, read by the ``gguf`` package."""
    from gguf import GGUFReader

    return len(GGUFReader(file).tensors)
