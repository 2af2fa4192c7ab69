"""Build two small real text-classification datasets from Debian package descriptions.

Why: tuneyard's demo and slow tests need a real task that nobody here wrote, small
enough to commit, with a learnable but not trivial signal. Debian's archive has one:
every binary package carries an English short + long description written by its
maintainer, a ``Section`` (what kind of software it is) and Debtags (``interface::...``).

Two tasks come out of one pass over the archive metadata:

* ``data/debian_topics/`` -- description -> archive section (games, science, sound, ...).
* ``data/debian_interface/`` -- description -> ``graphical`` vs ``commandline`` program
  (Debtags ``interface::`` facet), a different labelling of the same kind of text for the
  multi-task transfer grid.

Inputs are apt's own index files: ``*_Packages`` (section, tags, source, short description)
and ``*_Translation-en`` (the long description, joined on package name + Description-md5).
apt only fetches Translation-en when asked, so run once::

    apt-get update -o Acquire::Languages=en
    .venv/bin/python scripts/build_debian_topics.py

The run is deterministic for a given set of index files (fixed seed, sorted inputs).
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import subprocess
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LISTS_DIR = Path("/var/lib/apt/lists")
DEFAULT_SUITE_PREFIX = "deb.debian.org_debian_dists_bookworm_main"
TOPIC_SECTIONS = ("games", "science", "sound", "graphics", "net", "text")
INTERFACE_LABELS = {"interface::graphical": "graphical", "interface::commandline": "commandline"}
SPLIT_FRACTIONS = (("train", 0.70), ("validation", 0.15), ("test", 0.15))
MIN_WORDS = 8
MAX_CHARS = 600
SEED = 13


@dataclass(frozen=True)
class Package:
    """One binary package's fields that the datasets use."""

    name: str
    source: str
    section: str
    tags: frozenset[str]
    text: str


def read_index(path: Path) -> str:
    """Decompressed text of an apt list file (apt-helper knows every compression apt uses)."""
    return subprocess.run(
        ["/usr/lib/apt/apt-helper", "cat-file", str(path)], check=True, capture_output=True, text=True
    ).stdout


def stanzas(text: str) -> Iterator[dict[str, str]]:
    """Parse deb822 stanzas; continuation lines are joined to their field with newlines."""
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and key:
                fields[key] += "\n" + line[1:]
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def long_descriptions(translation: str) -> dict[tuple[str, str], str]:
    """(package, Description-md5) -> full English description from a Translation-en file."""
    return {
        (s["Package"], s["Description-md5"]): s["Description-en"]
        for s in stanzas(translation)
        if "Description-en" in s and "Description-md5" in s
    }


def clean_description(raw: str) -> str:
    """Short + long description as one paragraph ("Short. Long ..."), without deb822 ``.`` lines."""
    short, *rest = [line.strip() for line in raw.splitlines()]
    if short and short[-1] not in ".!?":
        short += "."
    words = " ".join([short, *(line for line in rest if line and line != ".")])
    return re.sub(r"\s+", " ", words).strip()


def trim(text: str, limit: int = MAX_CHARS) -> str:
    """Cut at the last word boundary before ``limit`` characters."""
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0]


def load_packages(packages_path: Path, translation_path: Path) -> list[Package]:
    """Binary packages with an English long description, sorted by name."""
    descriptions = long_descriptions(read_index(translation_path))
    packages = []
    for s in stanzas(read_index(packages_path)):
        full = descriptions.get((s["Package"], s.get("Description-md5", "")))
        if full is None or "Section" not in s:
            continue
        packages.append(
            Package(
                name=s["Package"],
                source=s.get("Source", s["Package"]).split(" ")[0],
                section=s["Section"].split("/")[-1],  # contrib/games -> games
                tags=frozenset(
                    t.strip() for t in s.get("Tag", "").replace("\n", " ").split(",") if t.strip()
                ),
                text=clean_description(full),
            )
        )
    return sorted(packages, key=lambda p: p.name)


def body_key(text: str) -> str:
    """What near-duplicates share: the long description without the short one, normalised."""
    return re.sub(r"[^a-z]+", " ", text.lower())[60:360]


def distinct(labelled: list[tuple[Package, str]]) -> list[tuple[Package, str]]:
    """One package per source package and per description body, so splits cannot leak.

    Binary packages of one source (``foo``, ``foo-data``, ``foo-doc``) mostly repeat the
    same long description; keeping them all would put near-copies in train and test.
    Prefers the shortest package name (usually the main binary).
    """
    seen_sources: set[str] = set()
    seen_bodies: set[str] = set()
    kept = []
    for package, label in sorted(labelled, key=lambda pl: (len(pl[0].name), pl[0].name)):
        key = body_key(package.text)
        if package.source in seen_sources or key in seen_bodies or len(package.text.split()) < MIN_WORDS:
            continue
        seen_sources.add(package.source)
        seen_bodies.add(key)
        kept.append((package, label))
    return kept


def balanced_splits(
    labelled: list[tuple[Package, str]], per_class: int, seed: int
) -> dict[str, list[tuple[Package, str]]]:
    """The same number of examples per label (``per_class`` or the rarest label's count),
    shuffled, split 70/15/15 within each label so every split has the same balance."""
    rng = random.Random(seed)
    by_label: dict[str, list[tuple[Package, str]]] = defaultdict(list)
    for package, label in labelled:
        by_label[label].append((package, label))
    per_class = min(per_class, *(len(rows) for rows in by_label.values()))
    splits: dict[str, list[tuple[Package, str]]] = {name: [] for name, _ in SPLIT_FRACTIONS}
    for label in sorted(by_label):
        rows = by_label[label]
        rng.shuffle(rows)
        rows = rows[:per_class]
        n_train = round(len(rows) * SPLIT_FRACTIONS[0][1])
        n_val = round(len(rows) * SPLIT_FRACTIONS[1][1])
        splits["train"] += rows[:n_train]
        splits["validation"] += rows[n_train : n_train + n_val]
        splits["test"] += rows[n_train + n_val :]
    for rows in splits.values():
        rng.shuffle(rows)
    return splits


def write_splits(folder: Path, splits: dict[str, list[tuple[Package, str]]]) -> dict[str, Counter[str]]:
    """Write ``train.csv`` / ``validation.csv`` / ``test.csv`` (id,text,label); return label counts."""
    folder.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split, rows in splits.items():
        with (folder / f"{split}.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "text", "label"])
            for package, label in rows:
                writer.writerow([package.name, trim(package.text), label])
        counts[split] = Counter(label for _, label in rows)
    return counts


def topic_examples(packages: list[Package], sections: tuple[str, ...]) -> list[tuple[Package, str]]:
    """Packages in one of ``sections``, labelled by their section."""
    return [(p, p.section) for p in packages if p.section in sections]


def interface_examples(packages: list[Package]) -> list[tuple[Package, str]]:
    """Programs tagged exactly one of graphical / commandline interface (libraries excluded)."""
    rows = []
    for package in packages:
        found = [INTERFACE_LABELS[t] for t in package.tags if t in INTERFACE_LABELS]
        if len(found) == 1 and package.section not in {"libs", "libdevel", "oldlibs"}:
            rows.append((package, found[0]))
    return rows


def tfidf_baseline(folder: Path, seed: int) -> dict[str, float]:
    """Validation/test accuracy of TF-IDF (1-2 grams) + logistic regression trained on train.csv.

    A reference point for fine-tuned models: what a bag of words already gets.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.pipeline import make_pipeline

    def read(split: str) -> tuple[list[str], list[str]]:
        with (folder / f"{split}.csv").open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        return [r["text"] for r in rows], [r["label"] for r in rows]

    model = make_pipeline(
        TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=2),
        LogisticRegression(C=10, max_iter=2000, random_state=seed),
    )
    model.fit(*read("train"))
    scores = {}
    for split in ("validation", "test"):
        texts, labels = read(split)
        scores[split] = accuracy_score(labels, model.predict(texts))
    return scores


def report(name: str, counts: dict[str, Counter[str]]) -> None:
    """Print class counts and the majority-class baseline per split."""
    print(f"== {name}")
    for split, counter in counts.items():
        total = sum(counter.values())
        print(
            f"{split}: n={total} majority={max(counter.values()) / total:.4f} {dict(sorted(counter.items()))}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lists-dir", type=Path, default=LISTS_DIR)
    parser.add_argument(
        "--prefix", default=DEFAULT_SUITE_PREFIX, help="apt list file prefix (suite/component)"
    )
    parser.add_argument("--out", type=Path, default=Path("data"))
    parser.add_argument("--topics-per-class", type=int, default=400)
    parser.add_argument("--interface-per-class", type=int, default=300)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument(
        "--baseline", action="store_true", help="also print a TF-IDF + logistic regression baseline"
    )
    args = parser.parse_args()

    packages_files = sorted(args.lists_dir.glob(f"{args.prefix}_binary-*_Packages*"))
    translation_files = sorted(args.lists_dir.glob(f"{args.prefix}_i18n_Translation-en*"))
    if not packages_files or not translation_files:
        raise SystemExit(
            f"no Packages/Translation-en files for {args.prefix} in {args.lists_dir}; "
            "run: apt-get update -o Acquire::Languages=en"
        )
    print(f"reading {packages_files[0].name} + {translation_files[0].name}")
    packages = load_packages(packages_files[0], translation_files[0])

    topics = balanced_splits(
        distinct(topic_examples(packages, TOPIC_SECTIONS)), args.topics_per_class, args.seed
    )
    interface = balanced_splits(distinct(interface_examples(packages)), args.interface_per_class, args.seed)
    for name, splits in (("debian_topics", topics), ("debian_interface", interface)):
        report(name, write_splits(args.out / name, splits))
        if args.baseline:
            scores = tfidf_baseline(args.out / name, args.seed)
            print("tfidf+logreg accuracy: " + " ".join(f"{k}={v:.4f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
