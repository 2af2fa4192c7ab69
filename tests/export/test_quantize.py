"""llama.cpp's quantizer as :mod:`tuneyard.export.quantize` runs it: its refusals, with llama.cpp's reason."""

from __future__ import annotations

import pytest

from tuneyard.errors import ExportError
from tuneyard.export.converter import Converter, convert
from tuneyard.export.quantize import QUANTS, quantize


def test_a_file_llama_cpp_cannot_read_is_an_error_with_its_reason(tmp_path) -> None:
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF" + bytes(60))  # the magic, then no valid header
    with pytest.raises(ExportError) as error:
        quantize(broken, tmp_path / "out.gguf", QUANTS["q4_k_m"])
    assert str(error.value).startswith("llama.cpp's quantizer could not write q4_k_m from broken.gguf: ")
    assert f"failed to load model from {broken}" in error.value.message


def test_the_converter_refuses_a_type_only_the_quantizer_writes(tmp_path) -> None:
    with pytest.raises(ExportError, match="llama.cpp's converter writes f16, bf16, f32, q8_0, not 'q4_k_m'"):
        convert(Converter(tmp_path, "unused"), tmp_path, tmp_path / "out.gguf", "q4_k_m")
