"""llama.cpp's own Hugging Face -> GGUF converter, pinned, fetched once, run as llama.cpp runs it.

The converter (``convert_hf_to_gguf.py``, its ``conversion`` package and its own
``gguf-py``) is not in any wheel; the ``llama-cpp-python`` source distribution vendors it
at a fixed llama.cpp commit. tuneyard pins that sdist by version and sha256, downloads it
from PyPI the first time an export needs it, and keeps the converter's files (MIT
licensed, their LICENSE alongside) in its cache, ``$XDG_CACHE_HOME/tuneyard`` (default
``~/.cache/tuneyard``). ``TUNEYARD_LLAMA_CPP`` points at a llama.cpp checkout instead.

The script runs in a subprocess with this Python (it puts its ``gguf-py`` first on
``sys.path`` and configures logging globally), so a failure is its own exit status and
message, turned into an :class:`~tuneyard.errors.ExportError` that names the cause.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

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


def find_converter(announce: Callable[[str], None] = announce_on_stderr) -> Converter:
    """``TUNEYARD_LLAMA_CPP``'s checkout, else the cached converter (fetched first if absent)."""
    checkout = os.environ.get("TUNEYARD_LLAMA_CPP")
    if checkout:
        folder = Path(checkout).expanduser()
        if not (folder / SCRIPT).is_file():
            raise ExportError(
                f"TUNEYARD_LLAMA_CPP={checkout} has no {SCRIPT}.",
                "Point it at a llama.cpp checkout, or unset it.",
            )
        return Converter(folder, f"llama.cpp checkout {folder}")
    folder = cache_root() / f"llama.cpp-from-llama-cpp-python-{SDIST_VERSION}"
    if not (folder / SCRIPT).is_file():
        announce(
            f"fetching llama.cpp's converter (llama-cpp-python {SDIST_VERSION} sdist, 77 MB, once): {folder}"
        )
        _fetch(folder)
    return Converter(folder, f"llama.cpp vendored in llama-cpp-python {SDIST_VERSION}")


def _fetch(folder: Path) -> None:
    """Download the pinned sdist, check its sha256, unpack the converter's parts, rename into place."""
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


def convert(converter: Converter, model_folder: Path, outfile: Path, outtype: str) -> str:
    """Run the converter on ``model_folder``; its log on success, an ``ExportError`` naming the cause."""
    if outtype not in CONVERTER_OUTTYPES:
        raise ExportError(f"llama.cpp's converter writes {', '.join(CONVERTER_OUTTYPES)}, not {outtype!r}.")
    command = [
        sys.executable,
        str(converter.script),
        str(model_folder),
        "--outtype",
        outtype,
        "--outfile",
        str(outfile),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not outfile.is_file():
        raise ExportError(
            f"llama.cpp's converter could not convert {model_folder}: {failure_reason(done.stderr)}",
            "Export a family llama.cpp supports (LLaMA, Qwen2, GPT-2, ...) with a tokenizer it recognises.",
        )
    return done.stderr


def failure_reason(log: str) -> str:
    """The line of the converter's log that says why it stopped (an ERROR, else the exception)."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    errors = [line.split(":", 2)[-1].strip() for line in lines if line.startswith("ERROR")]
    exceptions = [line for line in lines if line.split(":")[0].endswith(("Error", "Exception"))]
    return (errors or exceptions or lines or ["no output"])[-1]
