"""``tuneyard eval`` as one call: load the model and data, score, file the results.

Any model ``tuneyard.load`` reads works: plain Hugging Face folders, compressed
models, LoRA adapters (with their base) and run folders (their ``best/``). How the
model is loaded and scored is the data's task type's business; where the results go
and how they reach the manifest is the same for every task type.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.components.throughput import choose_device, json_number
from tuneyard.evaluate.options import ServerOptions
from tuneyard.evaluate.placement import SERVED_VARIANT, plan_placement, record_in_manifest, results_folder
from tuneyard.evaluate.served import check_servable, evaluate_served
from tuneyard.task_types import get_task_type
from tuneyard.task_types.base import EvalResult, ProgressCallback, TaskType
from tuneyard.yard.manifest import read_manifest_if_any
from tuneyard.yard.root import Yard

if TYPE_CHECKING:
    from tuneyard.data.loading import TaskData
    from tuneyard.yard.storage import Storage


@dataclass
class EvalOutcome:
    """A finished eval: the result and where it was filed."""

    result: EvalResult
    folder: Path
    artifact: Path | None
    metrics_key: str
    grader: dict[str, Any] | None = None  # which grader scored the answers, with its settings (chat evals)


def trained_setting(folder: Path, artifact: Path | None, field: str, storage: Storage) -> Any:
    """A setting the model was fine-tuned with (``max_length``, ``task_options``), from its manifest's config.

    Scoring at the training length, with the task type's own training options, keeps
    eval numbers equal to those the run logged. The manifests are the yard's (``storage``).
    """
    for candidate in (folder, artifact):
        manifest = read_manifest_if_any(candidate, storage) if candidate is not None else None
        value = manifest.config.get(field) if manifest is not None else None
        if value:
            return value
    return None


def trained_max_length(folder: Path, artifact: Path | None, storage: Storage) -> int | None:
    """The ``max_length`` the model was fine-tuned with (see :func:`trained_setting`)."""
    length = trained_setting(folder, artifact, "max_length", storage)
    return length if isinstance(length, int) and length > 0 else None


def trained_task_options(task_type: TaskType, folder: Path, artifact: Path | None, storage: Storage) -> Any:
    """The task type's own options the model was fine-tuned with, as its options model (None: it has none)."""
    if task_type.options is None:
        return None
    return task_type.options.model_validate(trained_setting(folder, artifact, "task_options", storage) or {})


def evaluate_model(
    model_path: str | Path,
    data: TaskData,
    yard: Yard,
    split: str = "validation",
    output_dir: str | Path | None = None,
    batch_size: int = 32,
    max_length: int | None = None,
    device: str | None = None,
    progress: ProgressCallback | None = None,
    answers: Any = None,
    samples: int | None = None,
    server: ServerOptions | None = None,
) -> EvalOutcome:
    """Evaluate the model at ``model_path`` on ``data``'s ``split`` and file the results.

    The placement is worked out before any compute, so a model with nowhere to put
    its results fails at once. Without ``max_length``, inputs are truncated at the
    length the model was fine-tuned with (its manifest's config), else at 512. A GGUF
    file is evaluated as the float32 folder it is imported to (once) in ``yard``, and
    its results are filed there. Chat answers are graded by ``answers.grader`` when given,
    else by the grader ``prepare`` recorded for the data's task, else ``exact``.

    With ``server.backend == "server"`` the answers come from an OpenAI-compatible server
    (:mod:`tuneyard.evaluate.served`), graded the same way; their results are filed beside the
    in-process ones under ``served_{task}_{split}`` (metrics key ``served_{task}``...), and the
    manifest's ``config.served_evals`` records the server for that key.
    """
    from tuneyard.models.loading import local_model_folder
    from tuneyard.task_types.causal_lm.options import AnswerOptions, answers_for_data
    from tuneyard.task_types.model_loading import resolve_checkpoint

    task_type = get_task_type(data.spec.task_type)
    dataset = data.split(split)
    if samples is not None:  # the first rows, in file order: the same rows for every model
        dataset = dataset.select(range(min(samples, len(dataset))))
    served = server if server is not None and server.served else None  # answers asked of a server
    if served is not None:
        check_servable(data, model_path, served, answers)
    folder = local_model_folder(resolve_checkpoint(model_path, yard))
    placement = plan_placement(
        folder, data.spec.name, split, yard, Path(output_dir) if output_dir is not None else None,
        variant=SERVED_VARIANT if served is not None else "",
    )  # fmt: skip
    if answers is None or isinstance(answers, AnswerOptions):
        answers = answers_for_data(answers, data.source, yard.storage)
    if served is not None:
        result: Any = evaluate_served(
            model_path, folder, data, dataset, split, answers, served, batch_size, progress
        )
    else:
        model, tokenizer = task_type.model.load_for_eval(folder, choose_device(device))
        if max_length is None:
            max_length = trained_max_length(folder, placement.artifact, yard.storage)
        task_options = trained_task_options(task_type, folder, placement.artifact, yard.storage)
        result = task_type.evaluation.evaluate(
            model,
            tokenizer,
            dataset,
            data.spec,
            split,
            batch_size,
            max_length,
            progress,
            answers,
            task_options,
        )
    with results_folder(yard, placement) as (temp, final):
        result.write_files(temp, yard.relative(folder))
    scores = {name: json_number(value) for name, value in result.metrics.items()}
    numbers = result.throughput.numbers()
    scores.update(samples_per_second=numbers["samples_per_second"])
    if served is None:  # a server's memory is not this process's to measure
        scores.update(peak_memory_mb=numbers["peak_memory_mb"])
    rates = result.throughput.rates()  # audio_seconds_per_second ... beside samples_per_second
    scores.update({name: value for name, value in rates.items() if name.endswith("_per_second")})
    record_in_manifest(yard, placement, scores, final, getattr(result, "backend", None))
    graded = isinstance(getattr(result, "options", None), AnswerOptions)  # a result that graded answers
    return EvalOutcome(
        result=result, folder=final, artifact=placement.artifact, metrics_key=placement.metrics_key,
        grader=answers.grader_settings() if graded else None,
    )  # fmt: skip
