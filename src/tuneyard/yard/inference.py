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
MODEL_TYPE_ALIASES = {"idefics3": "smolvlm", "smolvlm": "smolvlm"}

_TOKEN_SPLIT = re.compile(r"[_\-./\\]+")


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


def infer_metadata(folder: Path) -> tuple[dict[str, str], list[str]]:
    """Infer ``arch`` and ``method`` for ``folder``; returns the values and which were inferred.

    ``compression_info.json``, when present, is read rather than guessed.
    """
    values: dict[str, str] = {}
    info_file = folder / "compression_info.json"
    if info_file.is_file():
        try:
            info = json.loads(info_file.read_text())
        except (OSError, ValueError):
            info = {}
        for key in ("arch", "method"):
            if isinstance(info.get(key), str):
                values[key] = info[key]
    inferred: list[str] = []
    if "arch" not in values:
        values["arch"] = arch_from_config(folder) or arch_from_path(folder.resolve())
        inferred.append("arch")
    if "method" not in values:
        values["method"] = method_from_path(folder.resolve())
        inferred.append("method")
    return values, inferred
