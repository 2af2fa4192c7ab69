"""The GGUF types ``tuneyard export --quant`` offers, and llama.cpp's quantizer for those its converter lacks.

:data:`QUANT_TYPES` is the one list of types: the CLI's help, the options' validation,
the converter's check and every error message read it. llama.cpp's converter
(:mod:`.converter`) writes ``f16``, ``bf16``, ``f32`` and ``q8_0`` itself; the rest
(``q6_k``, ``q5_k_m``, ``q4_k_m``, ``q4_0``) are written by llama.cpp's own quantizer,
``llama_model_quantize`` in the ``llama-cpp-python`` binding, from an F16 file the
converter wrote first, as llama.cpp's README does (``convert_hf_to_gguf.py`` to F16, then
``llama-quantize``).

k-quants (``q4_k``, ``q5_k``, ``q6_k``) pack rows in blocks of 256 weights: a tensor whose
rows are not a multiple of 256 long is stored in another type by llama.cpp itself (``q4_k``
as ``q5_0``, ``q6_k`` as ``q8_0``, ...), which it reports as a warning, passed on here.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuneyard.errors import ExportError

# What the quantizer reads: the converter's F16 (half the disk of F32; llama.cpp's README
# quantizes from it, and the quantization error dwarfs F16's rounding).
QUANTIZER_INPUT = "f16"


@dataclass(frozen=True)
class QuantType:
    """One ``--quant`` choice: its name, who writes it, and what it stores."""

    name: str
    ftype: str | None  # llama.cpp's LLAMA_FTYPE_* for llama_model_quantize; None: the converter writes it
    summary: str

    @property
    def quantized(self) -> bool:
        """Whether llama.cpp's quantizer writes it (from an F16 file) rather than the converter."""
        return self.ftype is not None


QUANT_TYPES = (
    QuantType("f16", None, "16-bit floats (the default)"),
    QuantType("bf16", None, "bfloat16"),
    QuantType("f32", None, "32-bit floats"),
    QuantType("q8_0", None, "8 bits per weight in blocks of 32"),
    QuantType("q6_k", "LLAMA_FTYPE_MOSTLY_Q6_K", "6-bit k-quant"),
    QuantType("q5_k_m", "LLAMA_FTYPE_MOSTLY_Q5_K_M", "5-bit k-quant mix, some tensors at 6 bits"),
    QuantType("q4_k_m", "LLAMA_FTYPE_MOSTLY_Q4_K_M", "4-bit k-quant mix, some tensors at 6 bits"),
    QuantType("q4_0", "LLAMA_FTYPE_MOSTLY_Q4_0", "4 bits per weight in blocks of 32"),
)
QUANTS = {quant.name: quant for quant in QUANT_TYPES}
CONVERTER_OUTTYPES = tuple(quant.name for quant in QUANT_TYPES if not quant.quantized)
# llama.cpp's log lines about types it could not use: one per tensor, then a count.
FALLBACK = re.compile(r"not divisible by (\d+) \(required for type\s+(\w+)\)\s*->\s*falling back to\s+(\w+)")
FALLBACK_COUNT = re.compile(r"(\d+) of (\d+) tensor\(s\) required fallback quantization")


def quant_choices() -> str:
    """The ``--quant`` choices as the CLI's help and errors name them."""
    converter = ", ".join(CONVERTER_OUTTYPES)
    quantizer = ", ".join(quant.name for quant in QUANT_TYPES if quant.quantized)
    return f"{converter} (llama.cpp's converter); {quantizer} (llama.cpp's quantizer)"


def quantizer_version() -> str:
    """What quantizes, for the export's manifest; an ``ExportError`` if llama.cpp is not installed."""
    from tuneyard.export.llama_runtime import import_llama_cpp

    return f"llama.cpp llama_model_quantize (llama-cpp-python {import_llama_cpp().__version__})"


def quantize(infile: Path, outfile: Path, quant: QuantType) -> list[str]:
    """Write ``infile`` (an F16 GGUF) as ``quant`` to ``outfile``; llama.cpp's warnings worth passing on.

    llama.cpp's log is collected instead of printed (one line per tensor); a failure is an
    ``ExportError`` with the reason llama.cpp logged.
    """
    from tuneyard.export.llama_runtime import import_llama_cpp

    if not quant.quantized:
        raise ExportError(f"{quant.name} is written by llama.cpp's converter, not its quantizer.")
    llama_cpp = import_llama_cpp()
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, str(quant.ftype))
    with _collected_log(llama_cpp) as log:
        code = llama_cpp.llama_model_quantize(os.fsencode(infile), os.fsencode(outfile), ctypes.byref(params))
    text = "".join(log)
    if code != 0 or not outfile.is_file():
        raise ExportError(
            f"llama.cpp's quantizer could not write {quant.name} from {infile.name}: {_failure_reason(text)}",
            "Export --quant f16 to see whether llama.cpp reads the model at all.",
        )
    return _fallback_notes(text)


def _fallback_notes(log: str) -> list[str]:
    """llama.cpp's fallback warnings as one line: how many tensors, which type became which."""
    count = FALLBACK_COUNT.search(log)
    if not count:
        return []
    fallbacks = FALLBACK.findall(log)
    changes = Counter((wanted, used) for _, wanted, used in fallbacks)
    blocks = " or ".join(sorted({block for block, _, _ in fallbacks}, key=int))
    detail = ", ".join(f"{wanted} -> {used} ({n})" for (wanted, used), n in changes.most_common())
    return [
        f"llama.cpp used a fallback type for {count[1]} of {count[2]} tensors, whose rows are not a "
        f"multiple of the type's block ({blocks} weights): {detail}"
    ]


@contextlib.contextmanager
def _collected_log(llama_cpp: Any) -> Iterator[list[str]]:
    """llama.cpp's log lines while inside, gathered in a list; the previous log callback after."""
    lines: list[str] = []

    @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
    def collect(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
        lines.append(text.decode("utf-8", "replace"))

    previous, user_data = llama_cpp.llama_log_callback(), ctypes.c_void_p()
    llama_cpp.llama_log_get(ctypes.byref(previous), ctypes.byref(user_data))
    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    try:
        yield lines
    finally:
        llama_cpp.llama_log_set(previous, user_data)


def _failure_reason(log: str) -> str:
    """What llama.cpp said when it gave up (``failed to quantize: ...``), else its last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()]
    marker = "failed to quantize:"
    reasons = [line.split(marker, 1)[1].strip() for line in lines if marker in line]
    return (reasons or lines or ["no output"])[-1]
