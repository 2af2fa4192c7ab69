"""Fixtures for yard tests: a fresh yard in a temporary folder and a quick artifact maker."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tuneyard.yard import Manifest, Yard


@pytest.fixture
def yard(tmp_path: Path) -> Yard:
    """An empty yard rooted in its own temporary folder."""
    root = tmp_path / "yard"
    root.mkdir()
    return Yard.open(root)


@pytest.fixture
def make_artifact(yard: Yard) -> Callable[..., Path]:
    """``make_artifact(kind="compressed", model=..., method=..., rank=..., metrics=...)`` -> final folder.

    Writes through the real :class:`ArtifactWriter` (one weights file), so every
    artifact is filed by the layout and indexed exactly as a verb would do it.
    """

    def make(kind: str = "compressed", *, layout: dict[str, Any] | None = None, **fields: Any) -> Path:
        fields.setdefault("name", "placeholder")
        manifest = Manifest(kind=kind, **fields)
        target = yard.target_path(kind, **(layout or {}))
        with yard.create(manifest, target) as writer:
            (writer.path / "model.safetensors").write_bytes(b"weights")
        return writer.final_path

    return make
