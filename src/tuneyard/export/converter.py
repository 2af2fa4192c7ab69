"""llama.cpp's own Hugging Face -> GGUF converter, pinned, installed with tuneyard, run as llama.cpp runs it.

The converter (``convert_hf_to_gguf.py``, its ``conversion`` package and its own
``gguf-py``) is not in any wheel; the ``llama-cpp-python`` source distribution vendors it
at a fixed llama.cpp commit. tuneyard pins that sdist by version and sha256, and the
install commands (README, ``.ci/run``) fetch it once with ``python -m
tuneyard.export.converter`` (:func:`install_converter`), keeping the converter's files
(MIT licensed, their LICENSE alongside) in ``$XDG_CACHE_HOME/tuneyard`` (default
``~/.cache/tuneyard``). An export never downloads: on a machine where the install step
did not run it is an error that names the step, so a machine that is offline after
installing exports as well as one that is not. ``TUNEYARD_LLAMA_CPP`` points at a
llama.cpp checkout instead.

The script runs in a subprocess with this Python (it puts its ``gguf-py`` first on
``sys.path`` and configures logging globally), so a failure is its own exit status and
message, turned into an :class:`~tuneyard.errors.ExportError` that names the cause; an
architecture it has no converter for is named with the list of those it has, read from
the converter itself (``--print-supported-models``), so the list is never out of date.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneyard.errors import ExportError
from tuneyard.export.quantize import CONVERTER_OUTTYPES
from tuneyard.models.gguf import announce_on_stderr

SDIST_VERSION = "0.3.36"
SDIST_URL = (
    "https://files.pythonhosted.org/packages/ec/e9/e7de2b0463ea3ffbf0ede6cb21b58c1258a8f6521aae45ca773a59fe7cf3/"
    f"llama_cpp_python-{SDIST_VERSION}.tar.gz"
)
SDIST_SHA256 = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e"
VENDORED = f"llama_cpp_python-{SDIST_VERSION}/vendor/llama.cpp/"
# What the converter needs from llama.cpp's tree (and the license it comes under).
PARTS = ("convert_hf_to_gguf.py", "conversion/", "gguf-py/", "LICENSE")
SCRIPT = "convert_hf_to_gguf.py"
TOKENIZER_CONFIG, TOKENIZER_JSON = "tokenizer_config.json", "tokenizer.json"
# The tokenizer_class transformers 5 saves for any tokenizer on the `tokenizers` library.
GENERIC_TOKENIZER_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")
VISION_CONFIG = "vision_config"
# The converter's own prefix for a multimodal projector's file (``--mmproj``).
PROJECTOR_PREFIX = "mmproj-"


@dataclass(frozen=True)
class Converter:
    """Where the converter is and what it is (for the export's manifest)."""

    folder: Path
    version: str

    @property
    def script(self) -> Path:
        return self.folder / SCRIPT


def cache_root() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tuneyard"


def installed_folder() -> Path:
    """Where :func:`install_converter` puts the pinned converter."""
    return cache_root() / f"llama.cpp-from-llama-cpp-python-{SDIST_VERSION}"


def find_converter() -> Converter:
    """``TUNEYARD_LLAMA_CPP``'s checkout, else the installed converter; never a download."""
    checkout = os.environ.get("TUNEYARD_LLAMA_CPP")
    if checkout:
        folder = Path(checkout).expanduser()
        if not (folder / SCRIPT).is_file():
            raise ExportError(
                f"TUNEYARD_LLAMA_CPP={checkout} has no {SCRIPT}.",
                "Point it at a llama.cpp checkout, or unset it.",
            )
        return Converter(folder, f"llama.cpp checkout {folder}")
    folder = installed_folder()
    if not (folder / SCRIPT).is_file():
        raise ExportError(
            f"llama.cpp's converter is not installed (looked in {folder}).",
            f"Install it once, with the network: {sys.executable} -m tuneyard.export.converter "
            "(part of the README's install commands), or set TUNEYARD_LLAMA_CPP to a llama.cpp checkout.",
        )
    return Converter(folder, f"llama.cpp vendored in llama-cpp-python {SDIST_VERSION}")


def install_converter(announce: Callable[[str], None] = announce_on_stderr) -> Path:
    """Fetch the pinned converter into :func:`installed_folder` unless it is there; the folder.

    Downloads the pinned sdist, checks its sha256, unpacks the converter's parts and
    renames them into place, so a folder that exists is complete.
    """
    folder = installed_folder()
    if (folder / SCRIPT).is_file():
        return folder
    announce(f"fetching llama.cpp's converter (llama-cpp-python {SDIST_VERSION} sdist, 77 MB): {folder}")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".fetch-") as scratch:
        archive = Path(scratch) / "sdist.tar.gz"
        try:
            with urllib.request.urlopen(SDIST_URL, timeout=120) as response, open(archive, "wb") as out:
                shutil.copyfileobj(response, out)
        except OSError as exc:
            raise ExportError(
                f"could not download llama.cpp's converter from {SDIST_URL}: {exc}.",
                "Check the network, or set TUNEYARD_LLAMA_CPP to a llama.cpp checkout.",
            ) from exc
        digest = hashlib.sha256(archive.read_bytes()).hexdigest()
        if digest != SDIST_SHA256:
            raise ExportError(f"the downloaded sdist has sha256 {digest}, not the pinned {SDIST_SHA256}.")
        staged = Path(scratch) / "llama.cpp"
        with tarfile.open(archive) as tar:
            members = [
                member
                for member in tar.getmembers()
                if member.name.startswith(VENDORED) and member.name[len(VENDORED) :].startswith(PARTS)
            ]
            for member in members:
                member.name = member.name[len(VENDORED) :]
            tar.extractall(staged, members=members, filter="data")
        try:
            staged.rename(folder)
        except OSError:
            if not (folder / SCRIPT).is_file():  # another process won the race with the same files
                raise
    return folder


def convert(
    converter: Converter, model_folder: Path, outfile: Path, outtype: str, projector: bool = False
) -> str:
    """Run the converter on ``model_folder``; its log on success, an ``ExportError`` naming the cause.

    ``projector``: write the model's multimodal projector (``--mmproj``: the vision tower
    and connector, which llama.cpp's ``mtmd`` loads beside the text model) instead of
    its text model.
    """
    if outtype not in CONVERTER_OUTTYPES:
        raise ExportError(f"llama.cpp's converter writes {', '.join(CONVERTER_OUTTYPES)}, not {outtype!r}.")
    with converter_view(model_folder) as folder:
        command = [
            sys.executable,
            str(converter.script),
            str(folder),
            "--outtype",
            outtype,
            "--outfile",
            str(outfile),
            *(["--mmproj"] if projector else []),
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not outfile.is_file():
        architecture = model_architecture(model_folder, projector)
        section = "MMPROJ" if projector else "TEXT"
        supported = supported_architectures(converter, section)
        if architecture and supported and architecture not in supported:
            what = f"multimodal projector (--mmproj) for {architecture}" if projector else architecture
            raise ExportError(
                f"llama.cpp's converter ({converter.version}) has no {what}; it converts "
                f"{len(supported)} {'projectors of ' if projector else ''}architectures: "
                f"{', '.join(supported)}.",
                "Export a model of one of these architectures as GGUF, "
                "or use --format safetensors (a plain folder for runtimes that read Hugging Face models).",
            )
        raise ExportError(
            f"llama.cpp's converter could not convert {model_folder}: {failure_reason(done.stderr)}",
            "If it is the tokenizer: llama.cpp recognises one by how it splits a probe text, "
            "so export with the tokenizer the base model was published with.",
        )
    return done.stderr


@contextlib.contextmanager
def converter_view(model_folder: Path) -> Iterator[Path]:
    """``model_folder`` as the converter expects to read it: a byte-level BPE declared as ``GPT2Tokenizer``.

    transformers 5 saves every tokenizer it runs on the ``tokenizers`` library with
    ``tokenizer_class: TokenizersBackend``, whatever the class it was published with. The
    converter tells a byte-level BPE from a SentencePiece tokenizer by that name for some
    families (Phi3ForCausalLM: Phi-4 publishes ``GPT2Tokenizer``) and otherwise asks for a
    ``tokenizer.model``. For a folder whose ``tokenizer.json`` is a byte-level BPE, declared
    generically, with no ``tokenizer.model``, the converter reads a view of it: links to its
    files and a ``tokenizer_config.json`` naming ``GPT2Tokenizer`` (the same ids:
    transformers loads ``tokenizer.json`` as it is either way). The folder is not changed.
    """
    config_file = model_folder / TOKENIZER_CONFIG
    try:
        config = json.loads(config_file.read_text())
        tokenizer = json.loads((model_folder / TOKENIZER_JSON).read_text())
    except (OSError, ValueError):
        config, tokenizer = {}, {}
    byte_level_bpe = (tokenizer.get("model") or {}).get("type") == "BPE" and (
        tokenizer.get("decoder") or {}
    ).get("type") == "ByteLevel"
    if (
        config.get("tokenizer_class") not in GENERIC_TOKENIZER_CLASSES
        or not byte_level_bpe
        or (model_folder / "tokenizer.model").exists()
    ):
        yield model_folder
        return
    with tempfile.TemporaryDirectory(prefix="tuneyard-convert-") as scratch:
        view = Path(scratch) / model_folder.name  # the converter names the model after its folder
        view.mkdir()
        for path in model_folder.iterdir():
            if path.name != TOKENIZER_CONFIG:
                (view / path.name).symlink_to(path.resolve())
        (view / TOKENIZER_CONFIG).write_text(
            json.dumps(config | {"tokenizer_class": "GPT2Tokenizer"}, indent=2)
        )
        yield view


def _config(model_folder: Path) -> dict[str, Any]:
    try:
        config = json.loads((model_folder / "config.json").read_text())
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def model_architecture(model_folder: Path, projector: bool = False) -> str | None:
    """The architecture the converter picks for a folder (its ``get_model_architecture``): the first
    of its config's ``architectures``, or of its text (``projector``: vision) sub-config's if named."""
    config = _config(model_folder)
    sub = config.get(VISION_CONFIG if projector else "text_config") or {}
    architectures = sub.get("architectures") or config.get("architectures")
    return str(architectures[0]) if architectures else None


def has_vision_tower(model_folder: Path) -> bool:
    """Whether a model folder has a vision tower: its config has a ``vision_config``.

    That sub-config is what the converter's ``--mmproj`` reads the projector's shape from
    (``MmprojModel.get_vision_config``), whatever the family, so it is how an export knows
    there is a projector to write.
    """
    return bool(_config(model_folder).get(VISION_CONFIG))


def supported_architectures(converter: Converter, section: str = "TEXT") -> list[str]:
    """The Hugging Face architectures the converter makes a GGUF model of, as it lists them itself.

    ``--print-supported-models`` prints its registry (``TEXT models:`` then ``MMPROJ models:``,
    one ``  - Name`` line each; ``section`` picks one: the multimodal projectors are not
    models a runtime loads alone). Asked only after a failed conversion: it imports every
    model module (seconds).
    An empty list when the converter does not list them that way (another checkout).
    """
    command = [sys.executable, str(converter.script), "--print-supported-models"]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    names: list[str] = []
    current = None
    for line in (done.stderr + done.stdout).splitlines():
        if line.strip().endswith("models:"):
            current = line.strip()
        elif current == f"{section} models:" and line.strip().startswith("- "):
            names.append(line.strip()[2:])
    return names


def failure_reason(log: str) -> str:
    """The line of the converter's log that says why it stopped (an ERROR, else the exception)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line.split(":", 2)[-1].strip() for line in lines if line.startswith("ERROR")]
    exceptions = [line for line in lines if line.split(":")[0].endswith(("Error", "Exception"))]
    return (errors or exceptions or lines or ["no output"])[-1]


if __name__ == "__main__":  # the install step: python -m tuneyard.export.converter
    try:
        print(install_converter())
    except ExportError as exc:
        raise SystemExit(f"error: {exc}") from None
