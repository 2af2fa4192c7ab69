"""Graded evaluation of a causal LM: generate each answer, grade it, and score the references.

The eval generates an answer per row (:mod:`.generation`), grades it against the
row's reference with the task's grader (``exact``, ``contains``, ``regex``, ``json``,
``choice``: :mod:`tuneyard.components.graders`), and adds the perplexity of the
references (:mod:`.scoring`). Metrics: the grader's score under its own name
(``exact``, ``json``...), the score over parsable answers and the share that did not
parse, per-field accuracy for JSON (``json_field_accuracy`` and ``field_<name>``),
``perplexity``, and the generation speed (``tokens_per_second``).

Files: ``predictions.jsonl`` (id, prompt, request, prediction, reference, tokens, seconds,
score), ``grader_logs/{split}_{grader}/`` (every decision and the summary, the layout
``tuneyard grade`` writes) and ``metrics.json``.

Plain text rows (language modelling) have nothing to answer: their eval is the
perplexity of the text, every token after the first, and ``metrics.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.components.grade_log import LOGS_FOLDER, GradeSummary, grade_records, write_grade_log
from tuneyard.components.graders import make_grader
from tuneyard.components.throughput import Throughput, peak_memory
from tuneyard.task_types.base import ProgressCallback
from tuneyard.task_types.causal_lm.calibration import language_model_batches, perplexity
from tuneyard.task_types.causal_lm.generation import Generations, generate_answers, write_predictions
from tuneyard.task_types.causal_lm.options import AnswerOptions
from tuneyard.task_types.causal_lm.scoring import score_references

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.data.tasks import TaskSpec


@dataclass
class GradedResult:
    """One graded eval of a causal LM on one split."""

    spec: TaskSpec
    split: str
    options: AnswerOptions
    metrics: dict[str, float]
    generations: Generations
    logs: list[dict[str, Any]]
    summary: GradeSummary
    throughput: Throughput
    backend: dict[str, Any] | None = None  # the server that answered, for a served eval (None: this process)

    @property
    def main_metric(self) -> str:
        return self.options.grader

    def write_files(self, folder: Path, model: str) -> list[str]:
        """``predictions.jsonl``, ``grader_logs/{split}_{grader}/`` and ``metrics.json``."""
        predictions = write_predictions(folder, self.generations, [log["score"] for log in self.logs])
        logs = folder / LOGS_FOLDER / f"{self.split}_{self.options.grader}"
        logs.mkdir(parents=True)
        details = self.options.model_dump(include={"fields", "pattern", "choices"})
        write_grade_log(logs, self.logs, self.summary, {"model": model, "split": self.split, **details})
        document = {
            "model": model, "task": self.spec.name, "split": self.split, "metrics": self.metrics,
            "grader": self.options.grader_settings(),
        }  # fmt: skip
        if self.backend is not None:
            document["backend"] = self.backend
        (folder / "metrics.json").write_text(json.dumps(document, indent=2) + "\n")
        return [predictions, LOGS_FOLDER, "metrics.json"]


@dataclass
class PerplexityResult:
    """The perplexity of one split of plain text."""

    spec: TaskSpec
    split: str
    metrics: dict[str, float]
    throughput: Throughput
    main_metric: str = "perplexity"

    def write_files(self, folder: Path, model: str) -> list[str]:
        """``metrics.json``."""
        document = {"model": model, "task": self.spec.name, "split": self.split, "metrics": self.metrics}
        (folder / "metrics.json").write_text(json.dumps(document, indent=2) + "\n")
        return ["metrics.json"]


def evaluate_text(
    model: Any,
    tokenizer: Any,
    rows: Dataset,
    spec: TaskSpec,
    split: str,
    batch_size: int,
    max_length: int,
    progress: ProgressCallback | None = None,
) -> PerplexityResult:
    """Perplexity of a split's plain text rows (each cut to ``max_length`` tokens)."""
    import time

    import torch

    model.eval()
    device = next(model.parameters()).device
    batches = language_model_batches(tokenizer, rows, spec, batch_size, max_length)
    started = time.perf_counter()
    value = perplexity(model, batches, progress)
    seconds = time.perf_counter() - started
    memory, measure = peak_memory(torch.device(device))
    throughput = Throughput(len(rows), seconds, batch_size, max_length, str(device), memory, measure)
    return PerplexityResult(spec, split, {"perplexity": value}, throughput)


def graded_metrics(
    summary: GradeSummary, perplexity: float | None, generations: Generations
) -> dict[str, float]:
    """The scores an eval files: the grader's, per field, perplexity (None: unmeasured), generation speed."""
    metrics = {summary.grader: summary.score, "unparsable": summary.unparsable / max(summary.samples, 1)}
    if summary.score_parsed is not None:
        metrics[f"{summary.grader}_parsed"] = summary.score_parsed
    if summary.field_accuracy:
        values = list(summary.field_accuracy.values())
        metrics["json_field_accuracy"] = sum(values) / len(values)
        metrics.update({f"field_{name}": value for name, value in summary.field_accuracy.items()})
    if perplexity is not None:
        metrics["perplexity"] = perplexity
    if generations.seconds > 0:
        metrics["tokens_per_second"] = generations.tokens / generations.seconds
    return metrics


def answer_grader(options: AnswerOptions, rows: Dataset) -> Any:
    """The task's grader for these options, built before anything is generated (bad options fail first)."""
    return make_grader(options.grader, options.fields, options.pattern, options.choices, rows["reference"])


def evaluate_generations(
    model: Any,
    tokenizer: Any,
    rows: Dataset,
    spec: TaskSpec,
    split: str,
    batch_size: int,
    max_length: int,
    options: AnswerOptions,
    progress: ProgressCallback | None = None,
) -> GradedResult:
    """Generate, grade and score one split."""
    grader = answer_grader(options, rows)
    model.eval()
    generations = generate_answers(model, tokenizer, rows, options, batch_size, progress)
    references = score_references(model, tokenizer, rows, batch_size, max_length)
    return graded_result(
        model, grader, rows, generations, references.perplexity, spec, split, batch_size, max_length, options
    )


def graded_result(
    model: Any,
    grader: Any,
    rows: Dataset,
    generations: Generations,
    references_perplexity: float,
    spec: TaskSpec,
    split: str,
    batch_size: int,
    max_length: int,
    options: AnswerOptions,
) -> GradedResult:
    """Every chat model's eval once its answers are generated: graded, with the references'
    perplexity, the speed and the peak memory."""
    import torch

    device = next(model.parameters()).device
    memory, measure = peak_memory(torch.device(device))
    throughput = Throughput(
        len(rows), generations.seconds, batch_size, max_length, str(device), memory, measure
    )
    return grade_generations(grader, generations, spec, split, options, throughput, references_perplexity)


def grade_generations(
    grader: Any,
    generations: Generations,
    spec: TaskSpec,
    split: str,
    options: AnswerOptions,
    throughput: Throughput,
    references_perplexity: float | None,
) -> GradedResult:
    """Answers graded into a result, wherever they were generated (here, or by a server:
    ``tuneyard eval --backend server``, which measures no perplexity)."""
    records = [{"id": r.id, "prediction": r.prediction, "reference": r.reference} for r in generations.rows]
    logs, summary = grade_records(records, grader)
    metrics = graded_metrics(summary, references_perplexity, generations)
    return GradedResult(spec, split, options, metrics, generations, logs, summary, throughput)
