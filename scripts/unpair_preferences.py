"""Write a folder of preference pairs as KTO's unpaired rows (``prompt``, ``completion``, ``label``).

Why: KTO trains on single judged completions; the same pairs DPO and ORPO read give two
rows each, the chosen answer desirable and the rejected one not (TRL's own
``unpair_preference_dataset``), so the three objectives can be compared on one set::

    .venv/bin/python scripts/unpair_preferences.py data/debian_preferences /tmp/debian_kto
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    from trl.data_utils import unpair_preference_dataset

    from tuneyard.data.loading import read_split_files

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a folder of prompt/chosen/rejected split files")
    parser.add_argument("target", type=Path, help="the new folder (must not exist)")
    args = parser.parse_args()
    splits, _ = read_split_files(args.source)
    args.target.mkdir(parents=True)
    for split, rows in splits.items():
        unpaired = unpair_preference_dataset(rows.select_columns(["id", "prompt", "chosen", "rejected"]))
        lines = [json.dumps(row) + "\n" for row in unpaired]
        (args.target / f"{split}.jsonl").write_text("".join(lines))
        print(f"{split}: {len(rows)} pairs -> {len(unpaired)} rows")


if __name__ == "__main__":
    main()
