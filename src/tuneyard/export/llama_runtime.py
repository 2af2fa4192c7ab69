"""A GGUF file run by real llama.cpp (the ``llama-cpp-python`` binding): its tokens, logits and answers.

Validation asks llama.cpp the same three questions it asks transformers: how does it
tokenize this text, what are its logits at every position of this token sequence
(teacher-forced, so one early difference does not shift every later position), and
what does it answer greedily to this prompt. Nothing here re-implements llama.cpp;
it is the binding's ``Llama`` object with every position's logits kept.

A vision-language export is a text model and its multimodal projector
(:class:`MultimodalRuntime`): llama.cpp's ``mtmd`` library loads the projector beside the
text model, turns each image marker of a prompt into the image's embeddings (its own
image preprocessing, resizing and tiling, as a deployment runs it), and the answer is
decoded greedily after them. ``mtmd``'s helper evaluates the image chunks with no
per-position logits, so only answers are compared for image prompts.
"""

from __future__ import annotations

import contextlib
import ctypes
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.components.threads import default_threads
from tuneyard.errors import ExportError

if TYPE_CHECKING:
    import numpy as np

INSTALL_HINT = (
    "Install llama.cpp's Python binding (compiled from source, about 3.5 min on 2 cores):\n"
    'CMAKE_ARGS="-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF" '
    "pip install 'tuneyard[gguf]'"
)


def import_llama_cpp() -> Any:
    """The ``llama_cpp`` module, or an ``ExportError`` saying how to install it."""
    try:
        import llama_cpp
    except ImportError as exc:
        raise ExportError(f"llama.cpp's Python binding is not installed ({exc}).", INSTALL_HINT) from exc
    return llama_cpp


@dataclass
class Answer:
    """One greedy answer: its text, how many tokens it took and how long."""

    text: str
    tokens: int
    seconds: float


class LlamaRuntime:
    """One GGUF file loaded in llama.cpp with every position's logits kept."""

    def __init__(self, file: Path, context: int, threads: int | None = None, logits_all: bool = True) -> None:
        llama_cpp = import_llama_cpp()
        threads = threads or default_threads()
        self.threads = threads
        try:
            self.llama = llama_cpp.Llama(
                model_path=str(file),
                n_ctx=context,
                n_batch=min(context, 512),
                logits_all=logits_all,
                n_threads=threads,
                n_threads_batch=threads,
                seed=0,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise ExportError(
                f"llama.cpp could not load {file}: {exc}.", "Re-export it; the file may be truncated."
            ) from exc

    def close(self) -> None:
        """Free llama.cpp's model and context now rather than at garbage collection."""
        self.llama.close()

    def tokenize(self, text: str) -> list[int]:
        """``text``'s token ids as llama.cpp reads a prompt: special tokens parsed, no BOS added."""
        return self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def logits(self, ids: list[int]) -> np.ndarray:
        """Logits at every position of ``ids`` (one row per token), from a fresh context."""
        import numpy as np

        self.llama.reset()
        self.llama.eval(ids)
        return np.array(self.llama.scores[: len(ids)], dtype=np.float32, copy=True)

    def answer(self, prompt: str, max_new_tokens: int, stop: list[str]) -> Answer:
        """The greedy continuation of ``prompt`` (tokenized by llama.cpp), ended by an end-of-turn token."""
        ids = self.tokenize(prompt)
        started = time.perf_counter()
        completion = self.llama.create_completion(
            ids,
            max_tokens=max_new_tokens,
            temperature=0.0,  # llama.cpp's greedy sampler
            repeat_penalty=1.0,
            stop=stop or None,
        )
        seconds = time.perf_counter() - started
        return Answer(
            completion["choices"][0]["text"], int(completion["usage"]["completion_tokens"]), seconds
        )


class MultimodalRuntime(LlamaRuntime):
    """A text GGUF with its multimodal projector (``mmproj``) in llama.cpp's ``mtmd``: images and prompts
    in, greedy answers out (``marker`` stands for each image in a prompt)."""

    def __init__(self, file: Path, projector: Path, context: int, threads: int | None = None) -> None:
        super().__init__(file, context, threads, logits_all=False)
        import llama_cpp
        from llama_cpp import _logger, mtmd_cpp

        self.mtmd = mtmd_cpp
        # mtmd logs through llama-cpp-python's logger, as the text model does: errors only, unless verbose.
        mtmd_cpp.mtmd_log_set(_logger.llama_log_callback, None)
        mtmd_cpp.mtmd_helper_log_set(_logger.llama_log_callback, None)
        params = mtmd_cpp.mtmd_context_params_default()
        params.use_gpu = False
        params.print_timings = False
        params.n_threads = self.threads
        self.context = mtmd_cpp.mtmd_init_from_file(str(projector).encode(), self.llama.model, params)
        if not self.context:
            self.llama.close()
            raise ExportError(
                f"llama.cpp's mtmd could not load the projector {projector} beside {file.name}.",
                "Re-export the model; the projector and the text model must come from the same export.",
            )
        if not mtmd_cpp.mtmd_support_vision(self.context):
            self.close()
            raise ExportError(
                f"{projector} is not a vision projector (llama.cpp's mtmd reads no images with it)."
            )
        self.marker = mtmd_cpp.mtmd_default_marker().decode("utf-8")
        self.vocab = llama_cpp.llama_model_get_vocab(self.llama.model)

    def close(self) -> None:
        """Free the projector's context, then the text model's."""
        if self.context:
            self.mtmd.mtmd_free(self.context)
            self.context = None
        super().close()

    def answer_images(self, prompt: str, images: list[bytes], max_new_tokens: int) -> Answer:
        """The greedy answer to ``prompt`` (one ``marker`` per image, in order), ended by an end-of-turn
        token or ``max_new_tokens``; images are encoded files (PNG, JPEG...), decoded by llama.cpp."""
        import llama_cpp
        import numpy as np

        started = time.perf_counter()
        with self._chunks(prompt, images) as chunks:
            needed = self.mtmd.mtmd_helper_get_n_tokens(chunks) + max_new_tokens
            if needed > self.llama.n_ctx():
                raise ExportError(
                    f"a prompt with its images and answer needs {needed} tokens, more than llama.cpp's "
                    f"context of {self.llama.n_ctx()}.",
                    "Validate with fewer or smaller images, or lower --max-new-tokens.",
                )
            self.llama.reset()
            self.llama._ctx.kv_cache_clear()
            past = llama_cpp.llama_pos(0)
            failed = self.mtmd.mtmd_helper_eval_chunks(
                self.context, self.llama._ctx.ctx, chunks, 0, 0, self.llama.n_batch, True, ctypes.byref(past)
            )
            if failed:
                raise ExportError(
                    f"llama.cpp could not evaluate a prompt and its images (mtmd status {failed})."
                )
        self.llama.n_tokens = past.value
        tokens: list[int] = []
        vocabulary = self.llama.n_vocab()
        while len(tokens) < max_new_tokens:
            logits = llama_cpp.llama_get_logits_ith(self.llama._ctx.ctx, -1)
            token = int(np.ctypeslib.as_array(logits, shape=(vocabulary,)).argmax())
            if llama_cpp.llama_vocab_is_eog(self.vocab, token):
                break
            tokens.append(token)
            self.llama.eval([token])
        text = self.llama.detokenize(tokens).decode("utf-8", errors="replace")
        return Answer(text, len(tokens), time.perf_counter() - started)

    def prompt_positions(self, prompt: str, images: list[bytes]) -> list[int | None]:
        """The prompt llama.cpp builds, position by position: text token ids, and None for each
        position an image embedding fills. Where it differs from transformers' input ids (image
        tokens as None), the two runtimes tile or mark an image differently."""
        positions: list[int | None] = []
        with self._chunks(prompt, images) as chunks:
            for index in range(self.mtmd.mtmd_input_chunks_size(chunks)):
                chunk = self.mtmd.mtmd_input_chunks_get(chunks, index)
                if self.mtmd.mtmd_input_chunk_get_type(chunk) == self.mtmd.MTMD_INPUT_CHUNK_TYPE_TEXT:
                    count = ctypes.c_size_t()
                    tokens = self.mtmd.mtmd_input_chunk_get_tokens_text(chunk, ctypes.byref(count))
                    positions += [int(tokens[i]) for i in range(count.value)]
                else:
                    positions += [None] * self.mtmd.mtmd_input_chunk_get_n_tokens(chunk)
        return positions

    @contextlib.contextmanager
    def _chunks(self, prompt: str, images: list[bytes]) -> Iterator[Any]:
        """``prompt`` and its images as mtmd's input chunks (text tokens, image embeddings to be)."""
        mtmd = self.mtmd
        bitmaps = []
        chunks = mtmd.mtmd_input_chunks_init()
        try:
            for index, image in enumerate(images):
                buffer = (ctypes.c_uint8 * len(image)).from_buffer(bytearray(image))
                bitmap = mtmd.mtmd_helper_bitmap_init_from_buf(self.context, buffer, len(image), False)
                if not bitmap:
                    raise ExportError(f"llama.cpp could not decode image {index + 1} of a prompt.")
                bitmaps.append(bitmap)
            text = prompt.encode("utf-8")
            given = mtmd.mtmd_input_text()
            given.text, given.text_len = text, len(text)
            given.add_special, given.parse_special = False, True  # as the prompt is rendered: no BOS added
            array = (mtmd.mtmd_bitmap_p_ctypes * len(bitmaps))(*bitmaps)
            status = mtmd.mtmd_tokenize(self.context, chunks, ctypes.byref(given), array, len(bitmaps))
            if status:
                raise ExportError(
                    f"llama.cpp's mtmd could not tokenize a prompt with {len(images)} image(s) (status "
                    f"{status}: its {self.marker} markers and images differ in number, or an image failed)."
                )
            yield chunks
        finally:
            mtmd.mtmd_input_chunks_free(chunks)
            for bitmap in bitmaps:
                mtmd.mtmd_bitmap_free(bitmap)
