"""A GGUF file run by real llama.cpp (the ``llama-cpp-python`` binding): its tokens, logits and answers.

Validation asks llama.cpp the same three questions it asks transformers: how does it
tokenize this text, what are its logits at every position of this token sequence
(teacher-forced, so one early difference does not shift every later position), and
what does it answer greedily to this prompt. Nothing here re-implements llama.cpp;
it is the binding's ``Llama`` object with every position's logits kept.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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

    def __init__(self, file: Path, context: int, threads: int | None = None) -> None:
        llama_cpp = import_llama_cpp()
        threads = threads or os.cpu_count() or 1
        try:
            self.llama = llama_cpp.Llama(
                model_path=str(file),
                n_ctx=context,
                n_batch=min(context, 512),
                logits_all=True,
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
