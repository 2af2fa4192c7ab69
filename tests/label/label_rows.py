"""Rows for the label tests: ids the fault server reads back from the prompt."""

from __future__ import annotations

import json
from pathlib import Path


def write_rows(folder: Path, count: int, splits: tuple[str, ...] = ("train",)) -> Path:
    """``count`` rows per split (``id``, ``text``, ``label``) as JSON Lines files; ids are unique."""
    folder.mkdir(parents=True, exist_ok=True)
    offset = 0
    for split in splits:
        lines = [
            json.dumps({"id": offset + i, "text": f"item number {offset + i}", "label": "alpha"})
            for i in range(count)
        ]
        (folder / f"{split}.jsonl").write_text("\n".join(lines) + "\n")
        offset += count
    return folder


PROMPT = "Classify row={{ id }}: {{ text }}. Answer alpha, beta or gamma."
