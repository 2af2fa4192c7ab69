"""Real images for the tests: scikit-learn's bundled handwritten digits."""

from __future__ import annotations

from pathlib import Path


def digits_imagefolder(root: Path) -> Path:
    """scikit-learn's bundled handwritten digits 0-2 as PNG files, a folder per label."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for index, (pixels, label) in enumerate(zip(digits.images[:60], digits.target[:60], strict=True)):
        if label <= 2:
            folder = root / str(label)
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray((pixels * 15).astype(np.uint8)).save(folder / f"{index}.png")
    return root


SPOKEN_WORDS = ("yes", "no")
VOICES = ("en+m1", "en+f2", "en-us+m3")


def spoken_words_audiofolder(root: Path) -> Path:
    """Debian's espeak-ng saying "yes" and "no" in three voices: WAV files, a folder per word."""
    import subprocess

    for word in SPOKEN_WORDS:
        folder = root / word
        folder.mkdir(parents=True, exist_ok=True)
        for voice in VOICES:
            subprocess.run(["espeak-ng", "-v", voice, "-w", str(folder / f"{voice}.wav"), word], check=True)
    return root
