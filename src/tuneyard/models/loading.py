"""How a model folder loads: the rules ``tuneyard.load(path)`` follows.

``tuneyard.load`` itself is :func:`tuneyard.task_types.model_loading.load`.

What a folder is decides how it loads (first match wins):

1. ``compression_info.json`` — a tuneyard compressed model: the HF class named in the
   info file, built from ``config.json``, low-rank layers installed at the recorded ranks,
   ``model.safetensors`` loaded strictly. Offline, without the original weights.
2. ``adapter_config.json`` — a PEFT (LoRA) adapter. Its base is
   ``base_model_name_or_path`` (a local path: a relative one tried against the adapter
   folder, the root of the yard holding it, the working directory, then the absolute path
   the folder's manifest recorded; or a hub id), loaded as the adapter's task type loads
   it (a classifier's head sized from the adapter), else with these rules.
3. ``config.json`` — a plain HF model, loaded as the class its ``architectures`` names
   (``...ForSequenceClassification`` for a classifier; ``BertModel`` for a bare encoder
   such as all-MiniLM-L6-v2); ``AutoModel`` when the config names none.
4. A run folder with a ``best/`` (else ``last/``) subfolder: that subfolder.
5. No such local path, but a hub id (``org/name``): a plain HF model from the hub
   (or the local HF cache), by rule 3.

The model comes back in eval mode. :func:`load_tokenizer` finds the tokenizer for the
same path (an adapter without tokenizer files uses its base's).
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tuneyard.errors import ManifestError, ModelError
from tuneyard.yard.manifest import read_manifest
from tuneyard.yard.root import enclosing_root
from tuneyard.yard.storage import LOCAL

ADAPTER_CONFIG = "adapter_config.json"
RUN_SUBFOLDERS = ("best", "last")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
# What a hub snapshot needs for tuneyard: configs, tokenizer files, weights (no TF/Flax/ONNX copies).
HUB_SNAPSHOT_FILES = ("*.json", "*.safetensors", "*.txt", "*.model", "pytorch_model*.bin")


def load_tokenizer(path: str | Path) -> Any:
    """The tokenizer that belongs with :func:`load` ``(path)``."""
    from transformers import AutoTokenizer

    if is_hub_id(path):
        return AutoTokenizer.from_pretrained(str(path))
    folder = resolve_model_folder(path)
    if (folder / ADAPTER_CONFIG).is_file() and not (folder / "tokenizer_config.json").is_file():
        base = adapter_base(folder)
        return load_tokenizer(base) if isinstance(base, Path) else AutoTokenizer.from_pretrained(base)
    source = tokenizer_source(folder)
    try:
        return AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelError(f"{source} has no loadable tokenizer: {exc}") from exc


def tokenizer_source(folder: Path) -> Path | str:
    """Where a model folder's tokenizer is: the folder, or for a FlashSVD folder without one,
    the base model its ``compression_info.json`` names (FlashSVD's ``compress`` saves none)."""
    from tuneyard.models.flashsvd_folder import flashsvd_base_model

    if (folder / "tokenizer_config.json").is_file():
        return folder
    base = flashsvd_base_model(folder)
    if base is None:
        return folder
    return Path(base).expanduser() if Path(base).expanduser().is_dir() else base


def ensure_padding_token(tokenizer: Any) -> None:
    """Give decoder tokenizers (GPT-2, LLaMA) a pad token so batches can be padded.

    They have none by default; reusing the end-of-sequence token is the usual choice
    and leaves the vocabulary (and the embedding matrix) unchanged.
    """
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token


def is_hub_id(path: str | Path) -> bool:
    """True for ``org/name`` (or ``name``) that is not a local path."""
    text = str(path)
    return not Path(text).expanduser().exists() and bool(HUB_ID.fullmatch(text))


def _first_line(exc: Exception) -> str:
    """The headline of a hub or transformers error (their messages run to several lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def local_model_folder(path: str | Path) -> Path:
    """A local folder holding the model at ``path``.

    A local path resolves as :func:`resolve_model_folder`; a hub id (``org/name``) becomes
    its snapshot in the Hugging Face cache, downloaded unless already there (offline, the
    cache must hold it). Verbs that write next to a model (eval) then see a folder outside
    the yard, and ask for ``--output-dir``.
    """
    if not is_hub_id(path):
        return resolve_model_folder(path)
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(path), allow_patterns=list(HUB_SNAPSHOT_FILES)))
    except OSError as exc:  # offline and not cached, no such repo, gated, network errors
        raise ModelError(
            f"{path!s} is not a local folder and could not be fetched from the hub: {_first_line(exc)}",
            "Check the path, or the hub id and your network / HF_HUB_OFFLINE setting.",
        ) from exc


def resolve_model_folder(path: str | Path) -> Path:
    """The folder that holds the model: ``path`` itself, or a run's ``best/`` / ``last/``."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise ModelError(
            f"model folder {folder} does not exist.", "Give the path of a model folder in the yard."
        )
    markers = ("compression_info.json", ADAPTER_CONFIG, "config.json")
    if any((folder / marker).is_file() for marker in markers):
        return folder
    for sub in RUN_SUBFOLDERS:
        if any((folder / sub / marker).is_file() for marker in markers):
            return folder / sub
    raise ModelError(
        f"{folder} is not a model folder: "
        "it has no config.json, adapter_config.json or compression_info.json.",
        "Point at a model folder (or a run folder with best/ or last/ inside).",
    )


def model_class_for(config: Any) -> Any:
    import transformers

    for name in getattr(config, "architectures", None) or ():
        model_class = getattr(transformers, name, None)
        if model_class is not None:
            return model_class
    return transformers.AutoModel


def _refuse_lowrank_without_info(folder: Path) -> None:
    """A folder with low-rank tensors but no ``compression_info.json`` must not load as dense.

    transformers would skip the unknown ``.left`` / ``.right`` tensors and randomly
    initialise the dense weights they replaced: a model that runs and is wrong.
    """
    from safetensors import safe_open

    from tuneyard.models.compressed_folder import COMPRESSION_INFO_FILE, WEIGHTS_FILE

    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        return
    with safe_open(str(weights), framework="pt") as handle:
        lowrank = any(key.endswith(".left") for key in handle.keys())  # noqa: SIM118 (not a dict)
    if lowrank:
        raise ModelError(
            f"{folder} holds low-rank factors but no {COMPRESSION_INFO_FILE}, "
            "so its layers cannot be rebuilt.",
            "Restore compression_info.json from the original folder, or re-run `tuneyard compress`.",
        )


def load_plain(folder: Path | str) -> Any:
    from transformers import AutoConfig

    if isinstance(folder, Path):
        _refuse_lowrank_without_info(folder)
    try:
        config = AutoConfig.from_pretrained(folder)
        return model_class_for(config).from_pretrained(folder).eval()
    except (OSError, ValueError) as exc:
        hint = (
            None
            if isinstance(folder, Path)
            else "There is no local folder of that name either; check the path."
        )
        raise ModelError(f"{folder} is not a loadable Hugging Face model: {exc}", hint) from exc


def adapter_base(folder: Path) -> Path | str:
    """The adapter's base: an existing local folder if one matches, else the hub id.

    A relative path is tried against the adapter's own folder (a pack's ``base/``), then
    the root of the yard holding the adapter (how tuneyard records a base in the yard),
    then the working directory (as PEFT alone reads it), and last the absolute path the
    folder's manifest recorded when the adapter was written (an adapter copied out of its
    yard has no yard root to resolve against).
    """
    config = json.loads((folder / ADAPTER_CONFIG).read_text())
    base = config.get("base_model_name_or_path")
    if not base:
        raise ModelError(
            f"{folder / ADAPTER_CONFIG} has no base_model_name_or_path.",
            "Set it to the base model's folder or hub id.",
        )
    path = Path(base).expanduser()
    root = enclosing_root(folder)
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [folder / path, *([root / path] if root is not None else []), path]
        candidates += recorded_adapter_base(folder)
    for candidate in candidates:
        if candidate.is_dir():
            return candidate.resolve()
    return str(base)


def recorded_adapter_base(folder: Path) -> list[Path]:
    """The absolute base path ``folder``'s manifest recorded (``adapter_base``), if it has one."""
    try:  # the adapter folder being loaded, as it is here (a yard's is fetched whole, manifest included)
        recorded = read_manifest(folder, LOCAL).adapter_base
    except ManifestError:  # a foreign adapter: no manifest, or one tuneyard cannot read
        return []
    return [Path(recorded)] if recorded else []


def load_config(model_id: str | Path) -> Any:
    """``AutoConfig`` of a local folder or hub id, or a :class:`ModelError` that says what to check.

    Offline or mistyped hub ids otherwise surface as a transformers ``OSError`` traceback.
    """
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(model_id))
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"{str(model_id)!r} is neither a local model folder nor a loadable hub model: {_first_line(exc)}",
            "Check the path, or the hub id and your network / HF_HUB_OFFLINE setting.",
        ) from exc


@contextlib.contextmanager
def transformers_errors_only() -> Iterator[None]:
    """Silence transformers' warnings for a load whose "newly initialised" head is expected."""
    from transformers.utils import logging

    previous = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(previous)
