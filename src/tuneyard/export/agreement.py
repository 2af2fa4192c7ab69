"""``tuneyard validate``: does a GGUF export, run by llama.cpp, still behave like the model it came from?

The export is loaded in real llama.cpp (:mod:`.llama_runtime`) and compared with its
source Hugging Face folder (the merged or dense model it was converted from) on the
first ``samples`` rows of the task's validation data (by default the data its
fine-tuning run trained on, found through the lineage):

- **tokenizer**: the share of texts (rendered prompts and references) that both
  tokenize to the same ids, and whether the GGUF carries the same chat template;
- **next-token agreement**: each row's whole conversation is fed to both, teacher-forced,
  and the top-1 token at every position compared (an early difference does not shift
  the later positions, as it would in free-running generation);
- **perplexity** of those conversations in both (every token after the first);
- **greedy answers**: the share of prompts answered identically, and the task's graded
  accuracy of each side's answers (the grader ``tuneyard eval`` uses).

A vision-language export (a text GGUF with its ``mmproj-`` projector beside it) is run by
llama.cpp's ``mtmd`` (:class:`~.llama_runtime.MultimodalRuntime`): each row's prompt is
rendered by the model's chat template, its image markers replaced by mtmd's, and llama.cpp
is given the image files themselves, to prepare as a deployment does; transformers
answers with the preprocessing the model was fine-tuned with (its run's task options).
Tokenizer identity, identical answers and both accuracies are compared; next-token
agreement and perplexity are not (mtmd evaluates image chunks without per-position logits).

Results go into the export's manifest (``metrics.validation.*``, settings under
``config.validation``) and its ``validation/`` folder (every answer of both sides,
every tokenizer mismatch). ``min_accuracy`` is a release gate: an export whose
llama.cpp accuracy is below it is marked ``failed`` with the reason.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from tuneyard.config import Cli
from tuneyard.data.options import DataOptions
from tuneyard.errors import ExportError
from tuneyard.export.converter import PROJECTOR_PREFIX, has_vision_tower
from tuneyard.task_types import get_task_type
from tuneyard.task_types.causal_lm.options import AnswerOptions, answers_for_data
from tuneyard.task_types.data_loading import load_data
from tuneyard.yard.manifest import (
    TRAINING_KINDS,
    list_files,
    read_manifest,
    read_manifest_if_any,
    update_manifest,
)
from tuneyard.yard.root import Yard
from tuneyard.yard.writer import replace_folder

if TYPE_CHECKING:
    import numpy as np
    from datasets import Dataset

    from tuneyard.data.loading import TaskData
    from tuneyard.export.llama_runtime import Answer, LlamaRuntime
    from tuneyard.task_types.base import GenerationRole, ProgressCallback

VALIDATION_FOLDER = "validation"
# llama.cpp's context for image prompts: mtmd counts a prompt's image tokens only once the text model
# is loaded, so the context is sized for SmolVLM's largest tiling (17 tiles of 64 tokens, with
# their separators) plus an answer, or the model's own context if shorter; a prompt that needs
# more is refused with its count.
IMAGE_CONTEXT = 2048


class ValidateOptions(DataOptions):
    """What to compare an export with, on which rows, and the gate (``task``/``data``: default the run's)."""

    split: str = Field(default="validation", description="Split of the data to compare on.")
    samples: int = Field(default=32, ge=1, description="Compare on the first N rows of the split.")
    max_length: int = Field(default=512, ge=8, description="Cut each conversation to this many tokens.")
    min_accuracy: float | None = Field(
        default=None, ge=0, le=1, description="Fail the export when llama.cpp's graded accuracy is lower."
    )
    threads: int | None = Field(
        default=None, ge=1, description="llama.cpp threads (default: as many as torch computes on)."
    )
    answers: Annotated[AnswerOptions, Cli(flatten=True)] = Field(
        default_factory=lambda: AnswerOptions(max_new_tokens=32), title="Answers (chat data)"
    )


class PipelineValidateOptions(ValidateOptions):
    """``tuneyard validate``'s options plus the export to validate (a pipeline's validate step)."""

    export: str = Field(description="The export folder (in a pipeline, usually ${export-step}).")


@dataclass
class Side:
    """One model's view of the rows: argmax and loss per position, greedy answers, speed."""

    top1: list[np.ndarray] = field(default_factory=list)
    loss: float = 0.0
    positions: int = 0
    answers: list[str] = field(default_factory=list)
    answer_tokens: int = 0
    answer_seconds: float = 0.0

    @property
    def perplexity(self) -> float:
        return math.exp(self.loss / self.positions) if self.positions else float("nan")

    def add_logits(self, logits: np.ndarray, ids: list[int]) -> None:
        """Count one sequence's next-token predictions (every position that has a next token)."""
        import torch

        scores = torch.from_numpy(logits[: len(ids) - 1]).float()
        targets = torch.tensor(ids[1:], dtype=torch.long)
        self.loss += float(torch.nn.functional.cross_entropy(scores, targets, reduction="sum"))
        self.positions += len(ids) - 1
        self.top1.append(scores.argmax(dim=-1).numpy())


@dataclass
class Validation:
    """One export's validation: the numbers, the gate's verdict, where it was filed."""

    export: Path
    metrics: dict[str, float]
    passed: bool
    reason: str | None
    grader: str


@dataclass
class Rows:
    """The rows both sides see: conversations as token ids, rendered prompts, references; for image
    prompts, each row's image files and the marker that stands for an image in a prompt."""

    data: TaskData
    rows: Dataset
    sequences: list[list[int]]
    prompts: list[str]
    references: list[str]
    images: list[list[bytes]] = field(default_factory=list)
    image_marker: str | None = None
    task_options: Any = None  # the task type's own options the model was fine-tuned with


def export_gguf(folder: Path) -> Path:
    """The ``.gguf`` file of an export folder (or the file itself)."""
    if folder.is_file() and folder.suffix == ".gguf":
        return folder
    if not folder.exists():
        raise ExportError(
            f"{folder} does not exist.",
            "Give an exports/{name}_{quant}/ folder (tuneyard runs ls --kind export).",
        )
    found = folder.glob("*.gguf") if folder.is_dir() else []
    files = sorted(file for file in found if not file.name.startswith(PROJECTOR_PREFIX))
    if len(files) != 1:
        raise ExportError(
            f"{folder} is not a GGUF export (it holds {len(files)} .gguf model files, not one).",
            "Give an exports/{name}_{quant}/ folder written by tuneyard export --format gguf.",
        )
    return files[0]


def training_config(yard: Yard, folder: Path) -> dict[str, Any] | None:
    """The config of the nearest fine-tuning run behind ``folder`` (one that names its data).

    Found through the lineage (export -> merged -> run -> ...; :mod:`tuneyard.yard.lineage`).
    """
    from tuneyard.export.merge import artifact_folder
    from tuneyard.yard.lineage import lineage

    manifest = read_manifest_if_any(artifact_folder(folder, yard.storage), yard.storage)
    if manifest is None:
        return None
    record = manifest.to_data()
    for step in reversed(lineage(yard, record)):
        if step.kind not in TRAINING_KINDS or step.state != "artifact":
            continue
        config = read_manifest(yard.absolute(step.path), yard.storage).config
        if config.get("data") or config.get("task"):
            return config
    return None


def training_data(yard: Yard, folder: Path) -> tuple[DataOptions, dict[str, Any]] | None:
    """The data options (and seed, validation fraction) of the nearest fine-tuning run behind ``folder``."""
    config = training_config(yard, folder)
    if config is None:
        return None
    fields = {name: config[name] for name in DataOptions.model_fields if name in config}
    split_settings = {"seed": config.get("seed", 42)}
    split_settings["validation_fraction"] = config.get("validation_fraction", 0.1)
    return DataOptions(**fields), split_settings


def trained_task_options(yard: Yard, folder: Path, task_type: str) -> Any:
    """The task type's own options the model behind ``folder`` was fine-tuned with (its defaults for a
    model from elsewhere; None for a task type without any), so transformers answers as training saw."""
    options = get_task_type(task_type).options
    if options is None:
        return None
    config = training_config(yard, folder) or {}
    return options.model_validate(config.get("task_options") or {})


def load_rows(options: ValidateOptions, data: TaskData, tokenizer: Any, task_options: Any = None) -> Rows:
    """The first ``samples`` rows of the split (:func:`validation_data`) as token ids and prompts.

    Image prompts keep no token sequences: their logits are not compared (see the module's note).
    """
    generation = _generation(data)
    split = data.split(options.split)
    rows = split.select(range(min(options.samples, len(split))))
    if not generation.has_prompts(data.spec):  # plain text: perplexity and agreement only
        sequences = generation.token_sequences(tokenizer, rows, data.spec)
        return Rows(data, rows, [ids[: options.max_length] for ids in sequences], [], [])
    generation.prepare_tokenizer(tokenizer, data.spec, "the exported model")
    prompts = generation.render_prompts(tokenizer, rows)
    media = generation.prompt_images(tokenizer, rows)
    if media is not None:
        marker, images = media
        return Rows(data, rows, [], prompts, list(rows["reference"]), images, marker, task_options)
    sequences = [ids[: options.max_length] for ids in generation.token_sequences(tokenizer, rows, data.spec)]
    return Rows(data, rows, sequences, prompts, list(rows["reference"]), task_options=task_options)


def _generation(data: TaskData) -> GenerationRole:
    """The generation role of the data's task type: validation compares a language model's tokens."""
    generation = get_task_type(data.spec.task_type).generation
    if generation is None:
        raise ExportError(
            f"validation compares a language model's tokens and answers; {data.spec.name} is a "
            f"{data.spec.task_type} task.",
            "Give chat or plain text data with --data, or pass --no-validate.",
        )
    return generation


def validation_data(options: ValidateOptions, yard: Yard, folder: Path) -> TaskData:
    """``--data``/``--task``, else the data of the run behind ``folder``; language-model data only."""
    found = None if options.task or options.data else training_data(yard, folder)
    if found is not None:
        data_options, split_settings = found
        data = load_data(data_options, require_labels=False, **split_settings)
    elif options.task or options.data:
        data = load_data(options, require_labels=False)
    else:
        raise ExportError(
            f"{folder} has no fine-tuning run in its lineage to take validation data from.",
            "Give the rows to compare on with --data DIR or --task NAME, or pass --no-validate.",
        )
    _generation(data)
    return data


def check_ready(options: ValidateOptions, yard: Yard, model: Path) -> None:
    """Before an export is written: llama.cpp importable and the validation data found and usable."""
    from tuneyard.export.llama_runtime import import_llama_cpp

    import_llama_cpp()
    validation_data(options, yard, model)


def hf_side(
    model: Any, tokenizer: Any, rows: Rows, options: ValidateOptions, progress: ProgressCallback
) -> Side:
    """The source model in transformers: logits at every position, greedy answers one row at a time."""
    import torch

    side = Side()
    for ids in rows.sequences:
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([ids])).logits[0].float().numpy()
        side.add_logits(logits, ids)
        progress(1)
    if rows.prompts:  # one row per batch: no padding, so no padding can change an answer
        generation = _generation(rows.data)
        generations = generation.generate(
            model, tokenizer, rows.rows, _greedy(options.answers), 1, progress, rows.task_options
        )
        side.answers = [row.prediction for row in generations.rows]
        side.answer_tokens, side.answer_seconds = generations.tokens, generations.seconds
    return side


def gguf_side(
    runtime: LlamaRuntime, rows: Rows, options: ValidateOptions, progress: ProgressCallback
) -> Side:
    """The export in llama.cpp: the same sequences teacher-forced, the same prompts answered greedily
    (image prompts through mtmd, each image marker replaced by mtmd's)."""
    from tuneyard.task_types.causal_lm.generation import cut_at_stop

    side = Side()
    for ids in rows.sequences:
        side.add_logits(runtime.logits(ids), ids)
        progress(1)
    for index, prompt in enumerate(rows.prompts):
        if rows.image_marker is not None:
            answer = _image_answer(runtime, rows, index, options.answers.max_new_tokens)
        else:
            answer = runtime.answer(prompt, options.answers.max_new_tokens, options.answers.stop)
        side.answers.append(cut_at_stop(answer.text, options.answers.stop).strip())
        side.answer_tokens += answer.tokens
        side.answer_seconds += answer.seconds
        progress(1)
    return side


def _image_answer(runtime: LlamaRuntime, rows: Rows, index: int, max_new_tokens: int) -> Answer:
    """Row ``index``'s prompt and images answered by mtmd (a :class:`MultimodalRuntime`)."""
    from tuneyard.export.llama_runtime import MultimodalRuntime

    if not isinstance(runtime, MultimodalRuntime):
        raise ExportError(
            "these rows carry images, and the export has no multimodal projector (mmproj-*.gguf) beside it.",
            "Re-export the vision-language model with tuneyard export (it writes the projector too).",
        )
    prompt, images = rows.prompts[index], rows.images[index]
    marker = str(rows.image_marker)
    if prompt.count(marker) != len(images):
        raise ExportError(
            f"row {rows.rows[index]['id']}: its prompt has {prompt.count(marker)} {marker} marker(s) "
            f"and {len(images)} image(s).",
            "Give one image part per image in the row's messages.",
        )
    return runtime.answer_images(prompt.replace(marker, runtime.marker), images, max_new_tokens)


def _greedy(answers: AnswerOptions) -> AnswerOptions:
    return answers.model_copy(update={"do_sample": False})


def agreement(hf: Side, gguf: Side) -> float:
    """The share of positions where both sides' top-1 next token is the same."""
    same = sum(int((a == b).sum()) for a, b in zip(hf.top1, gguf.top1, strict=True))
    return same / max(hf.positions, 1)


def tokenizer_texts(rows: Rows) -> list[str]:
    """The texts both tokenizers read: each rendered prompt and reference, or each plain text row."""
    return [*rows.prompts, *rows.references] or [str(text) for text in rows.rows["text"]]


def tokenizer_check(tokenizer: Any, runtime: LlamaRuntime, rows: Rows) -> tuple[float, list[dict[str, Any]]]:
    """The share of texts with identical token ids in both, and the mismatches."""
    texts = tokenizer_texts(rows)
    mismatches = []
    for text in texts:
        expected = text_tokenizer(tokenizer)(text, add_special_tokens=False)["input_ids"]
        found = runtime.tokenize(text)
        if list(expected) != found:
            mismatches.append({"text": text, "transformers": list(expected), "llama.cpp": found})
    return 1 - len(mismatches) / max(len(texts), 1), mismatches


def text_tokenizer(tokenizer: Any) -> Any:
    """The text tokenizer of a processor (a vision-language model's), or the tokenizer itself."""
    return getattr(tokenizer, "tokenizer", tokenizer)


def graded(answers: list[str], rows: Rows, options: AnswerOptions) -> tuple[float, list[float]]:
    """The grader's score of ``answers`` against the references, and each answer's score."""
    from tuneyard.components.grade_log import grade_records
    from tuneyard.components.graders import make_grader

    grader = make_grader(options.grader, options.fields, options.pattern, options.choices, rows.references)
    records = [
        {"id": index, "prediction": answer, "reference": reference}
        for index, (answer, reference) in enumerate(zip(answers, rows.references, strict=True))
    ]
    logs, summary = grade_records(records, grader)
    return summary.score, [log["score"] for log in logs]


@dataclass
class Source:
    """The Hugging Face model an export came from, with its view of the rows (shared by its exports)."""

    folder: Path
    model: Any
    tokenizer: Any
    rows: Rows
    side: Side
    answers: AnswerOptions  # how answers on these rows are graded (the task's grader, or the options')


def validate_exports(
    references: list[str | Path],
    options: ValidateOptions,
    yard: Yard,
    progress: ProgressCallback | None = None,
) -> list[Validation]:
    """Validate each export; exports of one source share its transformers side (computed once)."""
    advance: ProgressCallback = progress or (lambda done: None)
    sources: dict[Path, Source] = {}
    results = []
    files = [export_gguf(locate(yard, reference)) for reference in references]
    folders = [source_folder(yard, file.parent) for file in files]  # every export checked before any work
    for file, folder in zip(files, folders, strict=True):
        check_projector(file, folder)
    for file, folder in zip(files, folders, strict=True):
        if folder not in sources:
            sources[folder] = load_source(folder, options, yard, file.parent, advance)
        graded = options.model_copy(update={"answers": sources[folder].answers})
        results.append(validate_with(file, sources[folder], graded, yard, advance))
    return results


def check_projector(file: Path, source: Path) -> None:
    """A vision-language source needs its projector beside the export's text model (and only it has one)."""
    from tuneyard.export.exporter import find_projector

    if has_vision_tower(source) and find_projector(file) is None:
        raise ExportError(
            f"{file.parent} was converted from a vision-language model ({source}) and holds no "
            f"multimodal projector ({PROJECTOR_PREFIX}*.gguf), so llama.cpp cannot read its images.",
            "Re-export it with tuneyard export --format gguf, which writes the projector too.",
        )


def locate(yard: Yard, reference: str | Path) -> Path:
    """An export given as a path from here, else as a path inside the yard."""
    path = Path(reference).expanduser()
    return path.resolve() if path.exists() else yard.absolute(str(reference))


def source_folder(yard: Yard, export: Path) -> Path:
    """The model folder the export was converted from (its manifest's ``config.source``)."""
    manifest = read_manifest(export, yard.storage)
    source = manifest.config.get("source")
    if manifest.kind != "export" or not source:
        raise ExportError(f"{export} is a {manifest.kind}, not an export.", "Give an exports/... folder.")
    folder = yard.absolute(source)
    if not folder.is_dir():
        raise ExportError(
            f"{export} was converted from {folder}, which is gone.",
            "Validation compares with the source model: restore it, or re-export.",
        )
    return folder


def load_source(
    folder: Path, options: ValidateOptions, yard: Yard, export: Path, progress: ProgressCallback
) -> Source:
    """Load the source model, the rows, and the source's logits and answers on them."""
    import torch

    data = validation_data(options, yard, export)
    # the task's grader, unless --grader names one
    answers = answers_for_data(options.answers, data.source, yard.storage)
    model, tokenizer = get_task_type(data.spec.task_type).model.load_for_eval(folder, torch.device("cpu"))
    model.eval()
    task_options = trained_task_options(yard, export, data.spec.task_type)
    rows = load_rows(options, data, tokenizer, task_options)
    if not rows.sequences and not rows.prompts:
        raise ExportError(f"split {options.split!r} of {rows.data.spec.name} has no rows to validate on.")
    return Source(folder, model, tokenizer, rows, hf_side(model, tokenizer, rows, options, progress), answers)


def validate_with(
    file: Path, source: Source, options: ValidateOptions, yard: Yard, progress: ProgressCallback
) -> Validation:
    """Run the export in llama.cpp on the source's rows, compare, gate, file."""
    from tuneyard.export.exporter import find_projector
    from tuneyard.export.llama_runtime import LlamaRuntime, MultimodalRuntime

    started = time.perf_counter()
    rows = source.rows
    projector = find_projector(file) if rows.image_marker is not None else None
    runtime = (
        MultimodalRuntime(file, projector, image_context(source.model), options.threads)
        if projector is not None
        else LlamaRuntime(file, context_size(source.tokenizer, rows, options), options.threads)
    )
    try:
        gguf = gguf_side(runtime, rows, options, progress)
        identical, mismatches = tokenizer_check(source.tokenizer, runtime, rows)
        template = runtime.llama.metadata.get("tokenizer.chat_template")
    finally:
        runtime.close()
    metrics = compare(source, gguf, options, identical)
    if rows.prompts:
        metrics["chat_template_identical"] = float(template == source.tokenizer.chat_template)
    metrics["seconds"] = round(time.perf_counter() - started, 1)
    passed, reason = gate(metrics, options)
    metrics["passed"] = float(passed)
    record = Validation(file.parent, metrics, passed, reason, options.answers.grader)
    file_validation(yard, record, options, answers_log(source, gguf, options), mismatches)
    return record


def context_size(tokenizer: Any, rows: Rows, options: ValidateOptions) -> int:
    """A llama.cpp context long enough for the longest sequence and the longest prompt plus its answer."""
    longest_prompt = max(
        (len(text_tokenizer(tokenizer)(p, add_special_tokens=False)["input_ids"]) for p in rows.prompts),
        default=0,
    )
    longest_sequence = max((len(ids) for ids in rows.sequences), default=0)
    return max(longest_sequence, longest_prompt + options.answers.max_new_tokens) + 16


def image_context(model: Any) -> int:
    """llama.cpp's context for image prompts: :data:`IMAGE_CONTEXT`, or the text model's own if shorter."""
    trained = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    return min(IMAGE_CONTEXT, trained or IMAGE_CONTEXT)


def compare(
    source: Source, gguf: Side, options: ValidateOptions, tokenizer_identical: float
) -> dict[str, float]:
    """``metrics.validation``: agreement, perplexity both sides, identical answers, accuracy both sides."""
    hf = source.side
    metrics = {
        "rows": float(len(source.rows.rows)),
        "texts": float(len(tokenizer_texts(source.rows))),
        "tokenizer_identical": tokenizer_identical,
    }
    if source.rows.sequences:
        metrics |= {
            "positions": float(hf.positions),
            "top1_agreement": agreement(hf, gguf),
            "perplexity_hf": hf.perplexity,
            "perplexity_gguf": gguf.perplexity,
            "perplexity_change": gguf.perplexity / hf.perplexity - 1,
        }
    if source.rows.images:
        metrics["images"] = float(sum(len(images) for images in source.rows.images))
    if source.rows.prompts:
        same = sum(a == b for a, b in zip(hf.answers, gguf.answers, strict=True))
        metrics["greedy_identical"] = same / len(hf.answers)
        metrics["accuracy_hf"] = graded(hf.answers, source.rows, options.answers)[0]
        metrics["accuracy_gguf"] = graded(gguf.answers, source.rows, options.answers)[0]
        metrics["seconds_per_answer_hf"] = hf.answer_seconds / len(hf.answers)
        metrics["seconds_per_answer_gguf"] = gguf.answer_seconds / len(gguf.answers)
    return metrics


def gate(metrics: dict[str, float], options: ValidateOptions) -> tuple[bool, str | None]:
    """``(passed, reason)``: the export fails when llama.cpp's accuracy is under ``min_accuracy``."""
    if options.min_accuracy is None:
        return True, None
    accuracy = metrics.get("accuracy_gguf")
    if accuracy is None:
        raise ExportError(
            "--min-accuracy grades answers, and plain text rows have none to grade.",
            "Validate on chat data (--data DIR), or leave out --min-accuracy.",
        )
    if accuracy >= options.min_accuracy:
        return True, None
    return False, (
        f"validation failed: {options.answers.grader} accuracy through llama.cpp is {accuracy:.3f}, "
        f"under --min-accuracy {options.min_accuracy}"
    )


def answers_log(source: Source, gguf: Side, options: ValidateOptions) -> list[dict[str, Any]]:
    """One line per prompt: both answers, the reference, each side's grade."""
    if not source.rows.prompts:
        return []
    hf = source.side
    hf_scores = graded(hf.answers, source.rows, options.answers)[1]
    gguf_scores = graded(gguf.answers, source.rows, options.answers)[1]
    return [
        {
            "id": row_id,
            "prompt": prompt,
            "reference": reference,
            "transformers": hf_answer,
            "llama_cpp": gguf_answer,
            "identical": hf_answer == gguf_answer,
            "score_transformers": hf_score,
            "score_llama_cpp": gguf_score,
        }
        for row_id, prompt, reference, hf_answer, gguf_answer, hf_score, gguf_score in zip(
            source.rows.rows["id"],
            source.rows.prompts,
            source.rows.references,
            hf.answers,
            gguf.answers,
            hf_scores,
            gguf_scores,
            strict=True,
        )  # fmt: skip
    ]


def file_validation(
    yard: Yard,
    record: Validation,
    options: ValidateOptions,
    answers: list[dict[str, Any]],
    mismatches: list[dict[str, Any]],
) -> None:
    """Write ``validation/`` (replacing an earlier one whole), then the manifest's metrics and status."""
    folder = record.export
    with replace_folder(yard.storage, folder / VALIDATION_FOLDER) as staged:
        staged.mkdir(parents=True, exist_ok=True)
        _write_lines(staged / "answers.jsonl", answers)
        _write_lines(staged / "tokenizer_mismatches.jsonl", mismatches)
        summary = {"metrics": record.metrics, "passed": record.passed, "reason": record.reason}
        (staged / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    settings = options.model_dump(exclude={"threads"}, exclude_defaults=False)

    def change(manifest: Any) -> None:
        manifest.metrics["validation"] = record.metrics
        manifest.config["validation"] = settings
        manifest.status = "complete" if record.passed else "failed"
        manifest.stop_reason = record.reason
        manifest.files = list_files(folder)

    yard.register(update_manifest(folder, change, yard.storage))


def _write_lines(path: Path, lines: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(line, default=str) + "\n" for line in lines))
