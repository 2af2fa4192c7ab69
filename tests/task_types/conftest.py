"""Audio fixtures shared by the audio classification tests: the spoken words, tiny encoders."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from audio_models import build_tiny_audio_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def words(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The spoken-word audiofolder, made by the repository's script."""
    out = tmp_path_factory.mktemp("audio") / "words"
    script = REPO / "scripts" / "build_spoken_words.py"
    subprocess.run([sys.executable, str(script), str(out)], check=True, capture_output=True, timeout=120)
    return out


@pytest.fixture(scope="session")
def audio_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """A tiny audio classifier of a family (wav2vec2, hubert, whisper), built once per session."""
    root = tmp_path_factory.mktemp("audio_models")
    built: dict[str, Path] = {}

    def make(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny_audio_model(root / family, family)
        return built[family]

    return make
