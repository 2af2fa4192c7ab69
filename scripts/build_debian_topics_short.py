"""Derive ``data/debian_topics_short/`` from ``data/debian_topics/``: each row's short description alone.

Why: a transfer matrix whose off-diagonal cells mean something needs two tasks a classifier
can be scored on both ways, i.e. one label set. This is the Debian sections task with
another input: the package's one-line synopsis instead of synopsis + long description.
Same rows, same ids, same labels, same splits, so a model trained on either is scored on
the other's test rows.

Nothing is fetched: ``build_debian_topics.py`` writes each text as ``"<synopsis>. <long
description>"`` (a ``.`` appended when the synopsis ends in no ``.``, ``!`` or ``?``), so the
synopsis is the text up to the first sentence end followed by a space. Run from the repo's
root::

    .venv/bin/python scripts/build_debian_topics_short.py --baseline
"""

from __future__ import annotations

import argparse
import csv
import re
from collections import Counter
from pathlib import Path

from build_debian_topics import SEED, tfidf_baseline  # scripts/: python scripts/x.py puts it on sys.path

SPLITS = ("train", "validation", "test")
# Where build_debian_topics.clean_description ended the synopsis: its last character,
# then the space before the long description (or the end of a text without one).
SYNOPSIS_END = re.compile(r"[.!?](?= |$)")


def synopsis(text: str) -> str:
    """The short description a ``debian_topics`` text starts with, its final ``.``/``!``/``?`` kept."""
    end = SYNOPSIS_END.search(text)
    return text[: end.end()] if end else text


def derive(source: Path, target: Path) -> dict[str, Counter[str]]:
    """Write ``target/{split}.csv`` (id,text,label) with each source row's synopsis; return label counts."""
    target.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in SPLITS:
        with (source / f"{split}.csv").open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        with (target / f"{split}.csv").open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "text", "label"])
            writer.writerows([row["id"], synopsis(row["text"]), row["label"]] for row in rows)
        counts[split] = Counter(row["label"] for row in rows)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--source", type=Path, default=Path("data/debian_topics"))
    parser.add_argument("--out", type=Path, default=Path("data/debian_topics_short"))
    parser.add_argument(
        "--baseline", action="store_true", help="also print a TF-IDF + logistic regression baseline"
    )
    args = parser.parse_args()
    for split, counter in derive(args.source, args.out).items():
        print(f"{split}: n={sum(counter.values())} {dict(sorted(counter.items()))}")
    if args.baseline:
        scores = tfidf_baseline(args.out, SEED)
        print("tfidf+logreg accuracy: " + " ".join(f"{k}={v:.4f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
