"""Guess arch and method for a folder that has no manifest (old or foreign checkpoints).

Rules come from the FlashSVD layout document: arch from ``config.json``'s
``model_type`` first, then from the path; method from the path. Path matching works
on whole name tokens (split on ``_ - . /``) so ``drawer`` is not ``fw`` and
``adasvd`` is not ``asvd``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

# Order matters: the first rule whose token matches wins.
ARCH_TOKENS: list[tuple[str, tuple[str, ...]]] = [
    ("modernbert", ("modernbert",)),
    ("roberta", ("roberta",)),
    ("bert", ("bert",)),
    ("llama", ("llama",)),
    ("gpt2", ("gpt2",)),
    ("whisper", ("whisper",)),
    ("wav2vec2", ("wav2vec2",)),
    ("hubert", ("hubert",)),
    ("smolvlm", ("smolvlm", "idefics3")),
]

METHOD_TOKENS: list[tuple[str, tuple[str, ...]]] = [
    ("fwsvd", ("fwsvd", "fw")),
    ("whiten", ("whiten", "drone")),
    ("adasvd", ("adasvd", "ada")),
    ("asvd", ("asvd",)),
    ("standard", ("standard",)),
]

# config.json model_type values that name a family under another spelling.
# Written by tuneyard compress (and FlashSVD before it) beside a compressed model's weights.
COMPRESSION_INFO_FILE = "compression_info.json"
MODEL_TYPE_ALIASES = {"idefics3": "smolvlm", "smolvlm": "smolvlm"}

_TOKEN_SPLIT = re.compile(r"[_\-./\\]+")
_RANK_TOKEN = re.compile(r"r\d+")


def path_tokens(path: str | Path) -> list[str]:
    """Lower-case name tokens of a path, split on ``_ - . /``."""
    return [token for token in _TOKEN_SPLIT.split(str(path).lower()) if token]


def _match(tokens: list[str], rules: list[tuple[str, tuple[str, ...]]]) -> str:
    token_set = set(tokens)
    for value, spellings in rules:
        if token_set.intersection(spellings):
            return value
    return "unknown"


def arch_from_path(path: str | Path) -> str:
    """Architecture named by a path's tokens, or ``unknown``."""
    return _match(path_tokens(path), ARCH_TOKENS)


def method_from_path(path: str | Path) -> str:
    """Compression method named by a path's tokens, or ``unknown``."""
    return _match(path_tokens(path), METHOD_TOKENS)


def arch_from_config(folder: Path) -> str | None:
    """``model_type`` of the folder's ``config.json``, if it has a readable one."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        return None
    try:
        model_type = json.loads(config_file.read_text()).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(model_type, str) or not model_type:
        return None
    return MODEL_TYPE_ALIASES.get(model_type, model_type)


def rank_from_path(path: str | Path) -> int | None:
    """The rank named by an ``r64`` token (the ``{model}_{method}_r{rank}`` layout), if any."""
    ranks = [int(token[1:]) for token in path_tokens(path) if _RANK_TOKEN.fullmatch(token)]
    return ranks[-1] if ranks else None


def infer_metadata(folder: Path, relative_to: Path | None = None) -> tuple[dict[str, object], list[str]]:
    """``arch``, ``method`` (and ``rank``, ``task`` when known) for a folder without a manifest.

    ``compression_info.json`` is read, not guessed. Otherwise arch comes from
    ``config.json``'s ``model_type``, then from the path; method and rank from the path.
    The path used is relative to ``relative_to`` (the yard root) when the folder is
    inside it, so the names of unrelated parent folders do not count. Returns the
    values and the names of the fields that were inferred rather than read.
    """
    values: dict[str, object] = read_compression_fields(folder)
    path = folder.resolve()
    base = relative_to.resolve() if relative_to is not None else None
    if base is not None and path.is_relative_to(base):
        path = path.relative_to(base)
    inferred: list[str] = []
    if "arch" not in values:
        values["arch"] = arch_from_config(folder) or arch_from_path(path)
        inferred.append("arch")
    if "method" not in values:
        values["method"] = method_from_path(path)
        inferred.append("method")
    if "rank" not in values:
        rank = rank_from_path(path)
        if rank is not None:
            values["rank"] = rank
            inferred.append("rank")
    return values, inferred


MODEL_FILES = ("config.json", COMPRESSION_INFO_FILE, "adapter_config.json")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".gguf")


def is_model_folder(names: list[str]) -> bool:
    """Whether a folder with these file names holds a model (config or weights)."""
    return any(name in MODEL_FILES or name.endswith(WEIGHT_SUFFIXES) for name in names)


def read_compression_fields(folder: Path) -> dict[str, Any]:
    """The fields users script against (arch, method, rank, task), from any tool's info file.

    Lenient, for folders tuneyard did not write (FlashSVD's ``compression_info.json``
    has these fields but not the layer table): a missing or unreadable file gives none.
    """
    try:
        info = json.loads((folder / COMPRESSION_INFO_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(info, dict):
        return {}
    fields: dict[str, Any] = {
        key: info[key] for key in ("arch", "method", "task") if isinstance(info.get(key), str)
    }
    if "method" in fields:  # FlashSVD's short names (fw, ada) as the layout spells them
        named = _match([fields["method"].lower()], METHOD_TOKENS)
        fields["method"] = fields["method"] if named == "unknown" else named
    # FlashSVD records ranks by kind ({"attn": 64, "ffn": 256, "wo": 256}) and names its
    # folders {model}_{method}_r{attn rank}.
    ranks = info.get("ranks")
    rank = info.get("rank", ranks.get("attn") if isinstance(ranks, dict) else None)
    if isinstance(rank, int) and not isinstance(rank, bool):
        fields["rank"] = rank
    return fields
