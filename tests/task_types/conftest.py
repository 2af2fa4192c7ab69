"""Fixtures shared by the task type tests: spoken words, tiny audio encoders, digit images, a tiny VLM."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from audio_models import build_tiny_audio_model
from media_data import digits_imagefolder
from vlm_models import build_tiny_vlm

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


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny SmolVLM-architecture model (tests/vlm_models.py), built once per session."""
    return build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "tiny_smolvlm")


@pytest.fixture(scope="session")
def digit_images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scikit-learn's handwritten digits 0-2 as an imagefolder (a folder per digit)."""
    return digits_imagefolder(tmp_path_factory.mktemp("images") / "digits")
