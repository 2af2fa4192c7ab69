"""Build a small handwritten-digit imagefolder whose label folders are the digits' English words.

Why: the vision-language task type (seed 003) needs real images that nobody here drew, with
one-word answers, and no hub is reachable. scikit-learn ships the UCI handwritten digits
(``sklearn.datasets.load_digits``: 1797 scans, 8x8 pixels, grey levels 0..16; the UCI
optical digits test set, 13 writers by its description); each is upscaled with a fixed
resampling to an RGB image and filed under its digit's word, so that ``--image-question
"What digit is this?"`` has the answer ``seven``.

Output (an ``imagefolder``: a folder per label under a folder per split)::

    OUT/train/seven/0042.png ...      (file name: the image's index in load_digits)
    OUT/validation/...
    OUT/test/...
    OUT/PROVENANCE.md                 what made the files, with which settings

Run::

    .venv/bin/python scripts/build_digit_questions.py OUT [--size 32] [--train 600 --test 200 ...]

The split is a seeded permutation of all 1797 images (the same output for one
scikit-learn version; the version is recorded).
"""

from __future__ import annotations

import argparse
from pathlib import Path

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLITS = {"train": 600, "validation": 100, "test": 200}
SIZE = 32  # px per side, upscaled from 8
SEED = 0
RESAMPLING = "NEAREST"  # PIL's filter: every source pixel becomes a SIZE/8 px square, no blur


def build(out: Path, size: int = SIZE, splits: dict[str, int] = SPLITS, seed: int = SEED) -> Path:
    """Write ``splits`` (name: image count) of upscaled digits under ``out``; returns ``out``."""
    import numpy as np
    import sklearn
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    wanted = sum(splits.values())
    if wanted > len(digits.images):
        raise ValueError(f"{wanted} images asked for; load_digits has {len(digits.images)}.")
    order = np.random.default_rng(seed).permutation(len(digits.images))
    start = 0
    counts: dict[str, list[int]] = {}
    for split, count in splits.items():
        counts[split] = [0] * len(WORDS)
        for index in order[start : start + count]:
            target = int(digits.target[index])
            # 0 (paper) .. 16 (ink) as dark ink on white paper, the way the digits were written.
            grey = (255 - digits.images[index] * 255 / 16).round().astype(np.uint8)
            image = Image.fromarray(grey).convert("RGB")
            image = image.resize((size, size), getattr(Image.Resampling, RESAMPLING))
            folder = out / split / WORDS[target]
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{index:04d}.png")
            counts[split][target] += 1
        start += count
    rows = [f"| {split} | {sum(c)} | {' / '.join(map(str, c))} |" for split, c in counts.items()]
    (out / "PROVENANCE.md").write_text(
        "\n".join(
            [
                "# Handwritten digits as one-word answers (scikit-learn's load_digits)",
                "",
                f"Made by scripts/build_digit_questions.py with scikit-learn {sklearn.__version__}.",
                "Source: sklearn.datasets.load_digits, the UCI ML hand-written digits test set",
                "(1797 images of 8x8 pixels, grey levels 0..16; 13 writers). Nothing here was drawn by us.",
                f"Each image: grey levels inverted to dark ink on white, upscaled to {size}x{size} RGB PNG",
                f"with PIL's {RESAMPLING} resampling. Label folders: the digit's English word.",
                f"Splits: a permutation of all images seeded {seed} (numpy default_rng), cut in order;",
                "file names are the image's index in load_digits. Writers are not separated across splits.",
                "",
                f"| split | images | per digit ({', '.join(WORDS)}) |",
                "|---|---:|---|",
                *rows,
                "",
            ]
        )
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="Folder to write (must not exist).")
    parser.add_argument("--size", type=int, default=SIZE, help=f"Side in px (default {SIZE}).")
    for split, count in SPLITS.items():
        parser.add_argument(f"--{split}", type=int, default=count, help=f"{split} images (default {count}).")
    parser.add_argument("--seed", type=int, default=SEED, help=f"Split seed (default {SEED}).")
    args = parser.parse_args()
    if args.out.exists():
        parser.error(f"{args.out} exists; give a new folder (nothing is overwritten).")
    splits = {split: getattr(args, split) for split in SPLITS}
    print(build(args.out, args.size, splits, args.seed))


if __name__ == "__main__":
    main()
