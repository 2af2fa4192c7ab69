"""What the pinned llama.cpp itself makes of a prompt with images: its tokens and its pixel tiles.

llama.cpp's multimodal library (``libmtmd``, shipped in llama-cpp-python 0.3.36) tokenizes a
prompt and preprocesses its images in ``mtmd_tokenize``; the image chunks it returns hold the
float tiles the vision encoder will see. Its C API exposes the tokens and each chunk's token
count but not the tiles (``mtmd_input_chunk_save`` leaves the pixels out), so
:func:`llamacpp_prompt` reads them from the chunk's C++ structs, laid out as the pinned
sources declare them (``tools/mtmd/mtmd.cpp: struct mtmd_image_tokens``,
``clip-impl.h: struct clip_image_f32``). Every read is checked against the sizes the
structs record, so a different layout fails loudly instead of reading garbage.

Images go in as PNG bytes through ``mtmd_helper_bitmap_init_from_buf``: llama.cpp's own
decoder (stb_image) turns RGBA, grey and palette images into RGB, as in deployment.
"""

from __future__ import annotations

import ctypes
import io
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_CHUNK = 1  # MTMD_INPUT_CHUNK_TYPE_IMAGE
# Byte offsets of the pinned structs (x86-64): mtmd_image_tokens holds five uint32 fields
# and then its clip_image_f32_batch, whose first member is std::vector<clip_image_f32>;
# a clip_image_f32 is 2 bools, an int, 4 ints of anyres info, then std::vector<float> buf, nx_, ny_.
BATCH_ENTRIES = 24
F32_SIZE = 56
F32_BUF = 24
F32_NX = 48
F32_NY = 52


@contextmanager
def mtmd_context(text_gguf: Path, mmproj_gguf: Path) -> Iterator[object]:
    """A llama.cpp multimodal context of a text GGUF and its mmproj GGUF, on the CPU."""
    import llama_cpp
    from llama_cpp import mtmd_cpp
    from llama_cpp._logger import llama_log_callback
    from llama_cpp._logger import logger as llama_logger

    # llama.cpp logs every tensor it loads: route mtmd's log through llama-cpp-python's, and
    # quieten that to errors while the context lives (it prints everything by default).
    mtmd_cpp.mtmd_log_set(llama_log_callback, ctypes.c_void_p())
    level = llama_logger.level
    llama_logger.setLevel(logging.ERROR)
    llama_cpp.llama_backend_init()
    model = llama_cpp.llama_model_load_from_file(
        str(text_gguf).encode(), llama_cpp.llama_model_default_params()
    )
    assert model, f"llama.cpp could not load {text_gguf}"
    params = mtmd_cpp.mtmd_context_params_default()
    params.use_gpu, params.print_timings, params.warmup, params.n_threads = False, False, False, 1
    context = mtmd_cpp.mtmd_init_from_file(str(mmproj_gguf).encode(), model, params)
    assert context, f"llama.cpp could not load {mmproj_gguf}"
    try:
        yield context
    finally:
        mtmd_cpp.mtmd_free(context)
        llama_cpp.llama_model_free(model)
        llama_logger.setLevel(level)


def llamacpp_prompt(
    context: object, prompt: str, images: list[Image.Image]
) -> tuple[list[int], list[np.ndarray]]:
    """llama.cpp's token ids for ``prompt`` (its media marker once per image; ``-1`` for each
    image embedding position) and its tiles in prompt order, each ``(3, height, width)`` float32."""
    from llama_cpp import mtmd_cpp

    bitmaps = []
    for image in images:
        png = io.BytesIO()
        image.save(png, format="PNG")
        data = (ctypes.c_uint8 * len(png.getvalue())).from_buffer_copy(png.getvalue())
        bitmap = mtmd_cpp.mtmd_helper_bitmap_init_from_buf(context, data, len(data), False)
        assert bitmap, "llama.cpp could not decode an image"
        bitmaps.append(bitmap)
    text = prompt.encode()
    text_input = mtmd_cpp.mtmd_input_text(
        text=text, text_len=len(text), add_special=False, parse_special=True
    )
    chunks = mtmd_cpp.mtmd_input_chunks_init()
    try:
        array = (mtmd_cpp.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
        assert mtmd_cpp.mtmd_tokenize(context, chunks, ctypes.byref(text_input), array, len(bitmaps)) == 0
        ids: list[int] = []
        tiles: list[np.ndarray] = []
        for index in range(mtmd_cpp.mtmd_input_chunks_size(chunks)):
            chunk = mtmd_cpp.mtmd_input_chunks_get(chunks, index)
            if mtmd_cpp.mtmd_input_chunk_get_type(chunk) == IMAGE_CHUNK:
                ids += [-1] * mtmd_cpp.mtmd_input_chunk_get_n_tokens(chunk)
                tiles += _chunk_tiles(mtmd_cpp.mtmd_input_chunk_get_tokens_image(chunk))
            else:
                count = ctypes.c_size_t()
                tokens = mtmd_cpp.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                ids += [tokens[i] for i in range(count.value)]
        return ids, tiles
    finally:
        mtmd_cpp.mtmd_input_chunks_free(chunks)
        for bitmap in bitmaps:
            mtmd_cpp.mtmd_bitmap_free(bitmap)


def _chunk_tiles(image_tokens: object) -> list[np.ndarray]:
    address = ctypes.cast(image_tokens, ctypes.c_void_p).value
    assert address
    first, end = (ctypes.c_void_p.from_address(address + BATCH_ENTRIES + 8 * i).value or 0 for i in range(2))
    assert (end - first) % F32_SIZE == 0, "mtmd_image_tokens is not laid out as the pinned llama.cpp declares"
    tiles = []
    for entry in range(first, end, F32_SIZE):
        buffer, buffer_end = (
            ctypes.c_void_p.from_address(entry + F32_BUF + 8 * i).value or 0 for i in range(2)
        )
        width = ctypes.c_int.from_address(entry + F32_NX).value
        height = ctypes.c_int.from_address(entry + F32_NY).value
        assert width > 0 and height > 0 and buffer_end - buffer == 4 * width * height * 3, (
            "clip_image_f32 is not laid out as the pinned llama.cpp declares"
        )
        pixels = np.ctypeslib.as_array((ctypes.c_float * (width * height * 3)).from_address(buffer))
        tiles.append(pixels.reshape(height, width, 3).transpose(2, 0, 1).copy())  # llama.cpp keeps RGBRGB...
    return tiles
