"""Preference training: the objective's TRL trainer, its reference, and the rows it refuses.

tuneyard builds one ``TrainingArguments`` for every run (its schedule, layout and
extras); here they are re-made as the objective's TRL config (``DPOConfig``,
``KTOConfig``, ``ORPOConfig``, ``CPOConfig``) with its beta, loss type and the run's
``--max-length``. The reference of DPO and KTO is the starting checkpoint:

* full fine-tuning: a frozen copy of the model as it starts (no second download, and a
  compressed or converted start is its own reference);
* LoRA: the same model with its adapter disabled, no second copy. TRL would copy a
  PEFT model's adapter into a "ref" adapter; tuneyard's adapters start at zero
  (LoRA's B), so the disabled base *is* the start, and the copy is dropped (it would
  also be saved beside the trained adapter).
* QLoRA: the same code as LoRA. The strategy hands over a PEFT model over the 4-bit
  base (readied by ``prepare_model_for_kbit_training``), so the reference is that
  quantized base with the adapter disabled, the start as it trains.

A prompt that fills ``--max-length`` leaves no answer to score (TRL would drop the row
silently): it is refused before any run folder exists, naming the rows and the length
that keeps them; answers cut by the limit are counted in a note.
"""

from __future__ import annotations

import copy
import dataclasses
import sys
from typing import TYPE_CHECKING, Any

from tuneyard.errors import ConfigError, DataError
from tuneyard.task_types.preference.objectives import OBJECTIVES, PAIRS, Objective
from tuneyard.task_types.preference.options import PreferenceOptions

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.data.loading import TaskData
    from tuneyard.models.checkpoint import StartingCheckpoint

TRAINED_SPLITS = ("train", "validation")
# The columns each kind of row gives TRL (the others are tuneyard's: id, reference, ...).
TRL_COLUMNS = {PAIRS: ["prompt", "chosen", "rejected"], "unpaired": ["prompt", "completion", "label"]}


def objective_of(task_options: Any) -> tuple[PreferenceOptions, Objective]:
    options = task_options or PreferenceOptions()
    return options, OBJECTIVES[options.objective]


def check_objective(data: TaskData, objective: Objective) -> None:
    """Refuse an objective that trains on the other kind of rows (KTO on pairs, DPO on unpaired rows)."""
    if objective.rows == data.spec.problem:
        return
    if objective.rows == PAIRS:
        raise ConfigError(
            f"--objective {objective.name} trains on preference pairs; {data.spec.name} holds KTO's unpaired "
            "rows (prompt, completion, label).",
            "Use --objective kto for these rows, or give prompt/chosen/rejected pairs.",
        )
    raise ConfigError(
        f"--objective {objective.name} trains on unpaired rows (prompt, completion, label); "
        f"{data.spec.name} holds preference pairs.",
        "Use --objective dpo, orpo or simpo for pairs.",
    )


def token_count(tokenizer: Any, messages: list[dict[str, Any]], prompt: bool) -> int:
    """Tokens of ``messages`` through the chat template (a prompt ready for the assistant's answer)."""
    return len(tokenizer.apply_chat_template(messages, add_generation_prompt=prompt)["input_ids"])


def row_lengths(tokenizer: Any, rows: Dataset) -> tuple[list[int], list[int]]:
    """Each row's prompt tokens and its longest whole sequence (prompt and an answer)."""
    answers = ["chosen", "rejected"] if "chosen" in rows.column_names else ["completion"]
    prompts, wholes = [], []
    for row in rows:
        prompts.append(token_count(tokenizer, row["prompt"], prompt=True))
        wholes.append(
            max(token_count(tokenizer, row["prompt"] + row[answer], prompt=False) for answer in answers)
        )
    return prompts, wholes


def check_lengths(data: TaskData, tokenizer: Any, max_length: int, task_options: Any) -> list[str]:
    """Refuse the wrong objective for the rows and prompts that fill ``max_length``; notes on cut answers."""
    check_objective(data, objective_of(task_options)[1])
    notes = []
    for split in TRAINED_SPLITS:
        rows = data.split(split)
        prompts, wholes = row_lengths(tokenizer, rows)
        long = [row_id for row_id, length in zip(rows["id"], prompts, strict=True) if length >= max_length]
        if long:
            shown = ", ".join(str(row_id) for row_id in long[:5])
            raise DataError(
                f"{len(long)} of {len(rows)} {split} rows have a prompt of --max-length {max_length} tokens "
                f"or more (ids: {shown}; the longest prompt has {max(prompts)}): no answer token would be "
                "scored.",
                f"Raise --max-length (to {max(wholes)} keeps every row whole), or shorten those prompts.",
            )
        cut = sum(length > max_length for length in wholes)
        if cut:
            notes.append(
                f"note: {cut} of {len(rows)} {split} rows are longer than --max-length {max_length} tokens "
                f"and lose the end of an answer (longest: {max(wholes)}); --max-length {max(wholes)} keeps "
                "them whole."
            )
    return notes


def fitting_max_length(
    data: TaskData, tokenizer: Any, checkpoint: StartingCheckpoint
) -> tuple[int, list[str]]:
    """The longest train row (prompt and its longer answer), within the model's context, with a note."""
    from tuneyard.task_types.causal_lm.training import model_context

    longest = max(row_lengths(tokenizer, data.split("train"))[1], default=1)
    context = model_context(checkpoint, tokenizer) or sys.maxsize
    length = min(longest, context)
    return length, [
        f"note: --max-length {length}, the longest train row's tokens (prompt and its longer answer)"
        + (", the model's context" if length < longest else "")
        + "; pass --max-length to choose."
    ]


def objective_arguments(
    arguments: Any, options: PreferenceOptions, objective: Objective, max_length: int
) -> Any:
    """tuneyard's ``TrainingArguments`` re-made as the objective's TRL config, with its own settings."""
    config_class = objective.config_class()
    fields = {
        field.name: getattr(arguments, field.name) for field in dataclasses.fields(arguments) if field.init
    }
    known = {field.name for field in dataclasses.fields(config_class)}
    own: dict[str, Any] = {"beta": options.beta, "max_length": max_length, **objective.fixed}
    if "loss_type" in known:
        own["loss_type"] = options.loss_type
    try:
        return config_class(**{**fields, **own})
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"TRL's {config_class.__name__} refused these settings: {exc}", "Check --beta and --loss-type."
        ) from exc


def frozen_copy(model: Any) -> Any:
    """The model as it starts, with no gradients: full fine-tuning's reference."""
    reference = copy.deepcopy(model).eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return reference


def is_peft_model(model: Any) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


def build_trainer(
    model: Any,
    arguments: Any,
    data: TaskData,
    tokenizer: Any,
    callbacks: list[Any],
    max_length: int,
    task_options: Any,
) -> Any:
    """The objective's TRL trainer on the train split, evaluating on the validation split."""
    options, objective = objective_of(task_options)
    columns = TRL_COLUMNS[objective.rows]
    extra: dict[str, Any] = {}
    lora = is_peft_model(model)
    if objective.reference == "start" and not lora:
        extra["ref_model"] = frozen_copy(model)
    try:
        trainer = objective.trainer_class()(
            model=model,
            args=objective_arguments(arguments, options, objective, max_length),
            train_dataset=data.split("train").select_columns(columns),
            eval_dataset=data.split("validation").select_columns(columns),
            processing_class=tokenizer,
            callbacks=callbacks,
            **extra,
        )
    except ValueError as exc:  # TRL's own checks of settings against the objective (KTO's batch size > 1)
        raise ConfigError(
            f"TRL's {objective.trainer.rpartition(':')[2]} refused this run: {exc}",
            "Change the setting it names.",
        ) from exc
    if lora and "ref" in model.peft_config:
        model.delete_adapter("ref")  # the disabled base is the start: see the module
    return trainer
