"""The OpenAI-compatible server a served eval asks: one tuneyard starts for the model, or one at a URL.

Which server answers (:func:`server_kind`):

* ``--server-url``: that server, whatever it runs; the model is ``--server-model`` or the
  first one it lists;
* a ``.gguf`` file: llama.cpp's server (llama-cpp-python's ``llama_cpp.server``, from the
  ``gguf`` extra), the file itself, as a deployment runs it;
* a model folder where vLLM is installed and a CUDA GPU is present: vLLM's server on it.

Anything else has no server to run it, and is refused before any work. A started server
is a child process on 127.0.0.1 at a free port, its output in a log whose tail is shown
when it fails to start; ``server_args`` (seed 002's ``model_server_args``) become its
command-line options; it is stopped when the eval ends, whatever happened.
"""

from __future__ import annotations

import contextlib
import importlib.util
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneyard.components.threads import default_threads
from tuneyard.errors import EvaluationError
from tuneyard.evaluate.options import ServerOptions

LLAMA_CPP = "llama.cpp"
VLLM = "vllm"
GIVEN_URL = "url"
# Request fields beyond temperature 0 that make a server decode greedily: llama-cpp-python's
# server applies a repeat penalty of 1.1 unless told otherwise (transformers applies none). A
# server behind a URL may be one, so it is told too; vLLM takes and ignores the unknown field.
GREEDY_FIELDS = {"repeat_penalty": 1.0}
START_SECONDS = {LLAMA_CPP: 120.0, VLLM: 900.0}  # vLLM compiles and captures graphs before serving
SERVER_MODULES = {
    LLAMA_CPP: ("llama_cpp.server", "pip install 'llama-cpp-python[server]==0.3.36' (tuneyard's gguf extra)"),
    VLLM: ("vllm.entrypoints.openai.api_server", "pip install vllm"),
}


@dataclass(frozen=True)
class ServedModel:
    """A server answering for the model under test: where, under which name, and how it was started."""

    url: str  # the base URL, ending in /v1
    model: str
    server: str  # llama.cpp, vllm or url
    server_args: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """What a result files about the server: the backend, which server, its URL, model and options."""
        return {
            "backend": "server", "server": self.server, "url": self.url, "model": self.model,
            "server_args": dict(self.server_args),
        }  # fmt: skip


def is_gguf(checkpoint: str | Path) -> bool:
    path = Path(checkpoint).expanduser()
    return path.suffix.lower() == ".gguf" and path.is_file()


def vllm_usable() -> bool:
    """vLLM installed and a CUDA GPU present (vLLM's server needs both)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    import torch

    return torch.cuda.is_available()


def server_kind(checkpoint: str | Path, options: ServerOptions) -> str:
    """Which server answers for ``checkpoint`` (see the module's list), or why none can."""
    if options.server_url:
        return GIVEN_URL
    if is_gguf(checkpoint):
        return LLAMA_CPP
    if vllm_usable():
        return VLLM
    raise EvaluationError(
        f"--backend server has no server to run {checkpoint}: tuneyard starts llama.cpp's server for a "
        ".gguf file, and vLLM's for a model folder only where vLLM is installed and a CUDA GPU is present.",
        "Export the model to GGUF (tuneyard export --format gguf) and evaluate its .gguf file, give "
        "--server-url of a running server that serves it, or evaluate in-process (--backend transformers).",
    )


def check_server_installed(kind: str) -> None:
    """The server's Python module importable here, or an error naming what to install."""
    if kind not in SERVER_MODULES:
        return
    module, install = SERVER_MODULES[kind]
    try:
        found = importlib.util.find_spec(module) is not None
        if found and kind == LLAMA_CPP:  # its own imports are the [server] extra's packages
            found = all(importlib.util.find_spec(name) for name in ("sse_starlette", "starlette_context"))
    except ImportError:
        found = False
    if not found:
        raise EvaluationError(f"{kind}'s OpenAI-compatible server is not installed here.", install)


def server_command(kind: str, model: Path, name: str, port: int, args: dict[str, Any]) -> list[str]:
    """The command that serves ``model`` as ``name`` on 127.0.0.1:``port``, with the user's ``args``.

    llama-cpp-python spells its options as the settings' names (``--n_ctx 2048``); vLLM with
    dashes (``--max-model-len 4096``), a true flag alone (``--enforce-eager``). llama.cpp
    computes on :func:`~tuneyard.components.threads.default_threads` unless ``args`` say
    otherwise: its own default, every core for prompts, spins threads against whatever
    else runs here.
    """
    module = SERVER_MODULES[kind][0]
    if kind == LLAMA_CPP:
        threads = default_threads()
        args = {"n_threads": threads, "n_threads_batch": threads, **args}
        command = [sys.executable, "-m", module, "--model", str(model), "--model_alias", name]
        command += ["--host", "127.0.0.1", "--port", str(port)]
        for key, value in args.items():
            command += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
        return command
    command = [sys.executable, "-m", module, "--model", str(model), "--served-model-name", name]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    for key, value in args.items():
        flag = f"--{key.replace('_', '-')}"
        if value is True:
            command.append(flag)
        elif value is not False:
            command += [flag, str(value)]
    return command


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serving(
    checkpoint: str | Path, folder: Path, options: ServerOptions, api_key: str
) -> Iterator[ServedModel]:
    """A server answering for the model: the one at ``--server-url``, else one started here for
    ``checkpoint`` (a .gguf file) or ``folder`` (vLLM), stopped on leaving."""
    kind = server_kind(checkpoint, options)
    if kind == GIVEN_URL:
        url = str(options.server_url).rstrip("/")
        yield ServedModel(url, options.server_model or listed_model(url, api_key), GIVEN_URL)
        return
    check_server_installed(kind)
    model = Path(checkpoint).expanduser().resolve() if kind == LLAMA_CPP else folder
    name = folder.name
    port = free_port()
    command = server_command(kind, model, name, port, options.server_args)
    with tempfile.TemporaryDirectory(prefix="tuneyard-server-") as scratch:
        log_path = Path(scratch) / "server.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            try:
                url = f"http://127.0.0.1:{port}/v1"
                wait_until_serving(process, url, log_path, START_SECONDS[kind], kind)
                yield ServedModel(url, name, kind, dict(options.server_args))
            finally:
                stop(process)


def wait_until_serving(
    process: subprocess.Popen[Any], url: str, log: Path, seconds: float, kind: str
) -> None:
    """Return once ``url/models`` answers; an error with the log's tail if the server exits first or
    ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            urllib.request.urlopen(f"{url}/models", timeout=2)
            return
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                why = "exited" if process.poll() is not None else f"was not serving after {seconds:.0f} s"
                raise EvaluationError(
                    f"{kind}'s server for the model {why}; its last output:\n{log.read_text()[-1500:]}",
                    "Check the model and the server's options (--server-arg name=value).",
                ) from None
            time.sleep(0.25)


def stop(process: subprocess.Popen[Any]) -> None:
    """End a server started here: asked to stop, then killed if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def listed_model(url: str, api_key: str) -> str:
    """The first model a server lists (``GET /models``), for a ``--server-url`` without ``--server-model``."""
    import openai

    client = openai.OpenAI(base_url=url, api_key=api_key, max_retries=2, timeout=30)
    try:
        models = [model.id for model in client.models.list()]
    except openai.OpenAIError as exc:
        raise EvaluationError(
            f"cannot list the models of the server at {url}: {str(exc).replace(api_key, '[api key]')}",
            "Check --server-url (it ends in /v1), or name the model with --server-model.",
        ) from None
    finally:
        client.close()
    if not models:
        raise EvaluationError(f"the server at {url} lists no model.", "Name it with --server-model.")
    return models[0]
