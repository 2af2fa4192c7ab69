"""Build ``data/debian_sections_chat/``: a small real instruction task from ``data/debian_topics``.

Why: the causal-LM demo and slow tests need an instruction task built from real text
that nobody here wrote, short enough to fine-tune a 135M-parameter model on a 2-core
CPU in minutes, with an answer that can be graded exactly. Each row asks for the
Debian archive section of a package from its maintainer-written description; the
answer is one word (``games``, ``graphics``, ``net``, ``science``, ``sound``, ``text``),
each section equally often in every split.

Rows are chat conversations (a ``messages`` column: system, user, assistant), the
shape seed 002's instruction tasks use. Descriptions are cut at a word boundary
before ``--chars`` characters so a row stays well under 256 tokens. The first rows of
each section in each split of ``debian_topics`` are taken in file order (those files
are shuffled with a fixed seed), so the build is deterministic::

    .venv/bin/python scripts/build_debian_chat.py
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "data" / "debian_topics"
TARGET = REPO / "data" / "debian_sections_chat"
SECTIONS = ("games", "graphics", "net", "science", "sound", "text")
SYSTEM = "You sort Debian packages into archive sections. Answer with the section name only."
QUESTION = (
    "Which Debian archive section is this package in: {sections}?\n\nPackage: {name}\nDescription: {text}"
)
PER_SECTION = {"train": 54, "validation": 8, "test": 20}  # rows per section: 324, 48, 120


def shorten(text: str, limit: int) -> str:
    """``text`` cut at the last word boundary before ``limit`` characters."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " ..."


def conversation(row: dict[str, str], chars: int) -> dict[str, object]:
    question = QUESTION.format(sections=", ".join(SECTIONS), name=row["id"], text=shorten(row["text"], chars))
    return {
        "id": row["id"],
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": question},
            {"role": "assistant", "content": row["label"]},
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--chars", type=int, default=280, help="Longest description kept, in characters.")
    args = parser.parse_args()
    TARGET.mkdir(parents=True, exist_ok=True)
    for split, per_section in PER_SECTION.items():
        with open(SOURCE / f"{split}.csv", newline="") as handle:
            source = list(csv.DictReader(handle))
        taken = {section: [r for r in source if r["label"] == section][:per_section] for section in SECTIONS}
        rows = [row for row in source if row in taken[row["label"]]]  # file order, sections interleaved
        with open(TARGET / f"{split}.jsonl", "w") as out:
            for row in rows:
                out.write(json.dumps(conversation(row, args.chars), ensure_ascii=False) + "\n")
        print(f"{split}: {len(rows)} rows -> {TARGET / f'{split}.jsonl'}")


if __name__ == "__main__":
    main()
