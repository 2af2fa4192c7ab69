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
def audio_model(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """A tiny audio classifier of a family (wav2vec2, hubert, whisper), built once per session;
    ``stable_layer_norm``: the -large layout, whose layers take transformers' attention adapters."""
    root = tmp_path_factory.mktemp("audio_models")
    built: dict[tuple[str, bool], Path] = {}

    def make(family: str, stable_layer_norm: bool = False) -> Path:
        key = (family, stable_layer_norm)
        if key not in built:
            folder = root / (f"{family}-large" if stable_layer_norm else family)
            built[key] = build_tiny_audio_model(folder, family, stable_layer_norm=stable_layer_norm)
        return built[key]

    return make
