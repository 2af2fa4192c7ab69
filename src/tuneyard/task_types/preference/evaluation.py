"""Evaluating a preference-tuned model: its answers, graded, and its rewards on the pairs.

The answers are the causal LM's eval (generated from each prompt, graded against the
chosen answer, the chosen answers' perplexity); for KTO rows only the desirable
completions are references. Beside them, the objective's own rewards on the split,
computed by its TRL trainer's ``evaluate`` as during training: ``rewards/accuracies``
(how often the chosen answer out-scores the rejected one), ``rewards/margins``,
``rewards/chosen``, ``rewards/rejected``. DPO and KTO score against the reference:
a LoRA run's adapter-disabled base; a fully fine-tuned model's starting checkpoint is
not at hand here, so its rewards are the ones training logged (the run's metrics).
"""

from __future__ import annotations

import tempfile
from typing import TYPE_CHECKING, Any

from tuneyard.task_types.preference.objectives import PAIRS
from tuneyard.task_types.preference.training import (
    TRL_COLUMNS,
    is_peft_model,
    objective_arguments,
    objective_of,
)

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.data.tasks import TaskSpec

REWARD_PREFIX = "rewards/"


def answer_rows(rows: Dataset, spec: TaskSpec) -> Dataset:
    """The rows whose completion is a reference answer: every pair, the desirable KTO rows."""
    return rows if spec.problem == PAIRS else rows.filter(lambda row: row["label"])


def reward_scores(
    model: Any,
    tokenizer: Any,
    rows: Dataset,
    spec: TaskSpec,
    batch_size: int,
    max_length: int,
    task_options: Any,
) -> dict[str, float]:
    """The objective's ``rewards/*`` on ``rows``; empty when its reference is not at hand (see the module)."""
    import torch
    from transformers import TrainingArguments
    from transformers.trainer_callback import PrinterCallback

    options, objective = objective_of(task_options)
    if objective.rows != spec.problem or (objective.reference == "start" and not is_peft_model(model)):
        return {}
    with tempfile.TemporaryDirectory() as scratch:
        arguments = TrainingArguments(
            output_dir=scratch,
            per_device_eval_batch_size=max(batch_size, 2),
            report_to="none",
            disable_tqdm=True,
            use_cpu=not torch.cuda.is_available(),
        )
        columns = TRL_COLUMNS[objective.rows]
        trainer = objective.trainer_class()(
            model=model,
            args=objective_arguments(arguments, options, objective, max_length),
            train_dataset=rows.select_columns(columns),
            eval_dataset=rows.select_columns(columns),
            processing_class=tokenizer,
        )
        trainer.remove_callback(PrinterCallback)  # it would print the raw metrics dict; the eval reports them
        if is_peft_model(model) and "ref" in model.peft_config:
            model.delete_adapter("ref")  # the adapter-disabled base is the reference (see training)
        metrics = trainer.evaluate()
    return {
        key.removeprefix("eval_"): float(value)
        for key, value in metrics.items()
        if key.startswith("eval_" + REWARD_PREFIX)
    }
