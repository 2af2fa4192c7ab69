"""Build a small spoken-word audiofolder: words said by Debian's espeak-ng, split by voice.

Why: audio classification needs real speech that nobody here wrote, and no wheel ships
a speech dataset. espeak-ng (Debian package ``espeak-ng``, installed by the README's
test command) synthesises English words in many voice variants; each word is said in
every voice at several speeds and pitches. The splits are by *voice*: the test voices
never occur in train or validation, so a model scores on speakers it never heard.

Output (an ``audiofolder``: a folder per label under a folder per split)::

    OUT/train/yes/en+m1_s140_p35.wav ...
    OUT/validation/...
    OUT/test/...
    OUT/PROVENANCE.md        what made the files, with which settings

Run::

    .venv/bin/python scripts/build_spoken_words.py OUT [--words yes no stop]

The output is deterministic for one espeak-ng version (the version is recorded).
"""

from __future__ import annotations

import argparse
import subprocess
from pathlib import Path

WORDS = ("yes", "no", "stop")
VOICES = {
    "train": ("en+m1", "en+m3", "en+f1", "en+f3", "en-us+m2", "en-us+f2"),
    "validation": ("en+m5", "en-us+f4"),
    "test": ("en+m7", "en+f5", "en-us+m4"),
}
SPEEDS = (140, 190)  # words per minute (espeak-ng -s; its default is 175)
PITCHES = (35, 65)  # 0-99 (espeak-ng -p; its default is 50)


def espeak_version() -> str:
    """The espeak-ng version line, for the provenance note."""
    return subprocess.run(
        ["espeak-ng", "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def build(out: Path, words: tuple[str, ...] = WORDS) -> Path:
    """Write every word in every voice, speed and pitch under ``out``; returns ``out``."""
    count = 0
    for split, voices in VOICES.items():
        for word in words:
            folder = out / split / word
            folder.mkdir(parents=True, exist_ok=True)
            for voice in voices:
                for speed in SPEEDS:
                    for pitch in PITCHES:
                        wav = folder / f"{voice}_s{speed}_p{pitch}.wav"
                        command = ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch)]
                        subprocess.run([*command, "-w", str(wav), word], check=True)
                        count += 1
    rows = [f"| {split} | {', '.join(voices)} |" for split, voices in VOICES.items()]
    (out / "PROVENANCE.md").write_text(
        "\n".join(
            [
                "# Spoken words (espeak-ng)",
                "",
                f"Made by scripts/build_spoken_words.py with {espeak_version()}.",
                f"Words (labels): {', '.join(words)}. Speeds (wpm): {SPEEDS}. Pitches: {PITCHES}.",
                f"{count} WAV files (22050 Hz mono, espeak-ng's rate). Splits by voice, none shared:",
                "",
                "| split | voices |",
                "|---|---|",
                *rows,
                "",
            ]
        )
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="Folder to write (created).")
    parser.add_argument("--words", nargs="+", default=list(WORDS), help="Words to say (the labels).")
    arguments = parser.parse_args()
    print(build(arguments.out, tuple(arguments.words)))


if __name__ == "__main__":
    main()
