"""``tuneyard label``: every row of a dataset asked of a teacher, filed as a new dataset.

The job, in order: read the rows (a dataset of the yard or a folder of splits), check
the templates and the answer format on the first row, find the job's journal (its key
is a hash of the rows and of everything that shapes an answer: teacher, URL, prompts,
answer format, sampling), ask the teacher for every row the journal holds no result
for (``concurrency`` workers, one paced, retried client: :mod:`tuneyard.label.client`),
appending each row's result to the journal as it arrives, then file the labelled rows
as a ``dataset`` artifact: one Parquet file per split (the row's columns, the target in
``output_column``, the teacher's raw answer and its confidence), the rows kept apart
(``rejected.jsonl``, ``failed.jsonl``, each with its reason), the cost log
(``requests.jsonl``: every HTTP request with its outcome and tokens) and a card.

A row ends ``labelled``, ``rejected`` (its answer never matched the format, or its
confidence is under ``min_confidence``) or ``failed`` (no answer after the retries).
Labelled and rejected rows were paid for: a rerun never asks them again. Failed rows are
asked again by a rerun; once none is left the journal is removed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import ConfigError, DataError, TuneyardError
from tuneyard.label.answers import AnswerChecker
from tuneyard.label.client import Attempt, Reply, RequestFailed, TeacherClient
from tuneyard.label.journal import JOURNAL_FILE, Journal
from tuneyard.label.limits import RequestPace
from tuneyard.label.options import LabelOptions
from tuneyard.label.output import write_dataset
from tuneyard.label.pairs import check_columns, without_equal_candidates
from tuneyard.label.prompts import ImageView, PromptRenderer
from tuneyard.label.tally import LabelledDataset, Tally

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.yard.root import Yard

JOBS_DIR = "label-jobs"  # under the yard's .tuneyard/shared/: journals of unfinished jobs
GIVE_UP_AFTER = 20  # rows answered with no valid answer at all: the format is wrong, stop paying
# Options that change how the job runs, not what an answer is: a rerun may change them and resume.
PER_JOB_FIELDS = frozenset(
    {"concurrency", "requests_per_minute", "timeout", "max_retries", "name", "output_dir", "api_key_env",
     "no_api_key", "price_prompt", "price_completion"}
)  # fmt: skip
FORMAT_HINT = (
    "Make the prompt ask for exactly the format (list the choices, show the JSON), "
    "or loosen --choices / --answer-regex / --answer-schema."
)


class LabellingStopped(TuneyardError):
    """The job stopped early: nothing in it is usable (the journal keeps what was paid for)."""


class LabellingInterrupted(TuneyardError):
    """Ctrl-C: the journal keeps every finished row; exit 130 as for any interrupted command."""

    exit_code = 130


def label_dataset(
    options: LabelOptions,
    yard: Yard,
    on_row: Callable[[Tally], None] | None = None,
    resume: bool = False,
) -> LabelledDataset:
    """Label ``options.data`` with the teacher (see the module docstring); ``on_row`` sees each result.

    ``resume`` insists on an interrupted job to continue (a rerun continues one anyway).
    """
    api_key = read_api_key(options)
    source, splits, files = read_rows(options, yard)
    renderer = PromptRenderer(options, student_image_view(options, yard))
    checker = AnswerChecker(options.answer)
    unsent_pairs = 0  # rows whose two candidates are the same: never sent, left out of the pairs
    for split, rows in splits.items():
        if len(rows):
            renderer.check(rows[0], rows.column_names, split)
        if options.pairs.wanted:
            check_columns(rows.column_names, options.pairs, split)
            splits[split], unsent = without_equal_candidates(rows, options.pairs)
            unsent_pairs += unsent
    job_dir = yard.shared_state_dir / JOBS_DIR / job_key(options, files)
    journal = Journal(job_dir / JOURNAL_FILE, yard.storage)
    if resume and not journal.path.is_file():
        raise DataError(
            "--resume: no interrupted labelling job matches these options.",
            "A job is found by its rows, teacher, URL, prompts and answer format: give the same ones "
            "as the interrupted run (or drop --resume to start afresh).",
        )
    done = journal.entries()
    tally = Tally(total=sum(len(rows) for rows in splits.values()))
    for entry in done.values():
        if entry["status"] != "failed":
            tally.add(entry, options)
            tally.from_journal += 1
    pending = [
        (split, index)
        for split, rows in splits.items()
        for index in range(len(rows))
        if done.get((split, index), {}).get("status") in (None, "failed")
    ]
    client = TeacherClient(
        options.base_url, api_key, options.teacher, timeout=options.timeout,
        max_retries=options.max_retries, pace=RequestPace(options.requests_per_minute),
        request=request_options(options, checker),
    )  # fmt: skip
    job = Job(options, splits, renderer, checker, client, journal, tally, on_row or (lambda tally: None))
    try:
        asyncio.run(job.run(pending))
    except KeyboardInterrupt:
        raise LabellingInterrupted(
            f"interrupted: {len(journal.entries())} of {tally.total} rows have a result in the journal.",
            "Run the same command again: only the rows without a result are asked.",
        ) from None
    finally:
        journal.close()
    entries = journal.entries()
    if not any(entry["status"] == "labelled" for entry in entries.values()):
        raise nothing_labelled(tally, options)
    written = write_dataset(
        options, yard, source, splits, entries, tally, client.dropped, job_dir, unsent_pairs
    )
    if not any(entry["status"] == "failed" for entry in entries.values()):
        yard.storage.delete(job_dir)
    return written


def student_image_view(options: LabelOptions, yard: Yard) -> ImageView | None:
    """With ``--image-preprocess``: each image as ``--student`` will see it (its processor, prepared
    the way its task type names ``options.image_preprocess``); None sends the images as they are.

    One blank image goes through the view first, so a student that reads no images, an unknown
    preprocessing or one the student's processor does not support is refused before any request."""
    if options.image_preprocess is None or options.student is None:
        return None
    from PIL import Image

    from tuneyard.task_types.model_loading import resolve_checkpoint, task_type_of_model

    checkpoint = resolve_checkpoint(options.student, yard)
    task_type = task_type_of_model(checkpoint)
    generation = task_type.generation if task_type else None
    preprocess = options.image_preprocess
    if task_type and generation:
        processor = task_type.model.load_processor(Path(checkpoint))
        if generation.image_as_seen(processor, Image.new("RGB", (8, 8)), preprocess) is not None:
            return lambda image: generation.image_as_seen(processor, image, preprocess)
    kind = f"a {task_type.name} model" if task_type else "a model tuneyard cannot place"
    raise ConfigError(
        f"--student {options.student} is {kind}, and --image-preprocess shows the teacher an image "
        "as a vision-language student sees it.",
        "Pass a vision-language checkpoint as --student (e.g. HuggingFaceTB/SmolVLM-256M-Instruct), "
        "or drop --image-preprocess and --student to send the images as they are.",
    )


def read_api_key(options: LabelOptions) -> str:
    """The key from its environment variable (a server that needs none gets a placeholder)."""
    if options.no_api_key:
        return "no-key"
    key = os.environ.get(options.api_key_env)
    if not key:
        raise ConfigError(
            f"the API key's environment variable {options.api_key_env} is not set.",
            f"export {options.api_key_env}=... (or --api-key-env NAME for another variable; "
            "--no-api-key for a local server that needs none).",
        )
    return key


def read_rows(options: LabelOptions, yard: Yard) -> tuple[Path, dict[str, Dataset], dict[str, Path]]:
    """The source folder, its splits (only ``options.splits``) and their files."""
    from tuneyard.data.loading import read_split, read_split_files
    from tuneyard.data.prepare import dataset_folder

    source = dataset_folder(options.data, yard)
    if source.is_file():
        splits, files = {"train": read_split(source)}, {"train": source}
    else:
        splits, files = read_split_files(source)
    if options.splits is not None:
        missing = [split for split in options.splits if split not in splits]
        if missing:
            raise DataError(f"{source} has no split {missing[0]!r}.", f"Its splits: {', '.join(splits)}.")
        splits = {split: splits[split] for split in options.splits}
        files = {split: files[split] for split in options.splits}
    return source, splits, files


def job_key(options: LabelOptions, files: dict[str, Path]) -> str:
    """What identifies a job's answers: the rows' bytes and every option that shapes an answer."""
    from tuneyard.data.loading import split_shards

    digest = hashlib.sha256()
    for split, path in files.items():
        for shard in split_shards(path):
            digest.update(split.encode() + b"\0" + shard.read_bytes())
    shaping = options.model_dump(mode="json", exclude=set(PER_JOB_FIELDS))
    digest.update(json.dumps(shaping, sort_keys=True).encode())
    return digest.hexdigest()[:20]


def request_options(options: LabelOptions, checker: AnswerChecker) -> dict[str, Any]:
    """The chat-completion parameters besides model and messages."""
    request: dict[str, Any] = {"max_tokens": options.max_tokens, "temperature": options.temperature}
    if options.logprobs:
        request |= {"logprobs": True, "top_logprobs": 1}  # llama.cpp's server needs top_logprobs too
    response_format = checker.response_format()
    if response_format is not None:
        request["response_format"] = response_format
    return request


class Job:
    """The asking: a pool of workers over the pending rows, each result journalled at once."""

    def __init__(
        self,
        options: LabelOptions,
        splits: dict[str, Dataset],
        renderer: PromptRenderer,
        checker: AnswerChecker,
        client: TeacherClient,
        journal: Journal,
        tally: Tally,
        on_row: Callable[[Tally], None],
    ) -> None:
        self.options, self.splits, self.renderer, self.checker = options, splits, renderer, checker
        self.client, self.journal, self.tally, self.on_row = client, journal, tally, on_row

    async def run(self, pending: list[tuple[str, int]]) -> None:
        """The first row alone (an unreachable server or a refused key stops the job there), then the rest."""
        try:
            if pending:
                first = await self.label_row(*pending[0])
                if first["status"] == "failed" and first.get("unreachable"):
                    raise DataError(
                        f"cannot reach the teacher at {self.options.base_url}: {first['reason']}",
                        "Check --base-url (an OpenAI-compatible server's URL, usually ending in /v1) "
                        "and that the server is running.",
                    )
                self.record(first)
            queue = list(reversed(pending[1:]))
            try:
                async with asyncio.TaskGroup() as group:
                    for _ in range(min(self.options.concurrency, len(queue))):
                        group.create_task(self.worker(queue))
            except ExceptionGroup as failures:  # the first stops the others; it is the one to report
                raise failures.exceptions[0] from None
        finally:
            await self.client.close()

    async def worker(self, queue: list[tuple[str, int]]) -> None:
        while queue:
            self.record(await self.label_row(*queue.pop()))

    def record(self, entry: dict[str, Any]) -> None:
        self.journal.append(entry)
        self.tally.add(entry, self.options)
        self.on_row(self.tally)
        if (
            self.tally.labelled == 0
            and len(self.tally.invalid_answers)
            and self.tally.rejected >= GIVE_UP_AFTER
        ):
            raise LabellingStopped(
                f"none of the first {self.tally.rejected} answers matched the answer format; "
                f"stopped so as not to pay for more. First: {self.tally.invalid_answers[0]}.",
                FORMAT_HINT,
            )

    async def label_row(self, split: str, index: int) -> dict[str, Any]:
        """Ask for one row until its answer is valid or the answer retries run out."""
        row = self.splits[split][index]
        messages = self.renderer.messages(row)
        attempts: list[Attempt] = []
        entry: dict[str, Any] = {"split": split, "row": index}
        for _ in range(self.options.answer_retries + 1):
            try:
                reply = await self.client.ask(messages)
            except RequestFailed as failure:
                attempts += failure.attempts
                entry |= {"status": "failed", "reason": failure.reason, "unreachable": failure.unreachable}
                return entry | {"requests": _requests(attempts)}
            attempts += reply.attempts
            parsed = self.checker.parse(reply.text)
            if parsed.problem is None:
                break
        entry |= {"answer": reply.text, "confidence": reply.confidence, "requests": _requests(attempts)}
        if parsed.problem is not None:
            return entry | {"status": "rejected", "reason": parsed.problem, "invalid": True}
        low = self.low_confidence(reply)
        if low is not None:
            return entry | {"status": "rejected", "reason": low}
        return entry | {"status": "labelled", "target": self.renderer.student_target(row, parsed.value)}

    def low_confidence(self, reply: Reply) -> str | None:
        """Why ``reply`` falls under ``--min-confidence`` (None: it does not)."""
        threshold = self.options.min_confidence
        if threshold is None:
            return None
        if reply.confidence is None:
            return "no confidence: the server returned no log-probabilities"
        if reply.confidence < threshold:
            return f"confidence {reply.confidence:.3f} is under --min-confidence {threshold:g}"
        return None


def _requests(attempts: list[Attempt]) -> list[dict[str, Any]]:
    return [
        {
            "outcome": attempt.outcome,
            "prompt_tokens": attempt.prompt_tokens,
            "completion_tokens": attempt.completion_tokens,
            "seconds": round(attempt.seconds, 4),
        }
        for attempt in attempts
    ]


def nothing_labelled(tally: Tally, options: LabelOptions) -> TuneyardError:
    """The error when no row got a valid label: nothing is filed."""
    if tally.invalid_answers:
        return LabellingStopped(
            f"no answer matched the answer format ({tally.rejected} rejected). "
            f"First: {tally.invalid_answers[0]}.",
            FORMAT_HINT,
        )
    return LabellingStopped(
        f"no row was labelled ({tally.failed} failed, {tally.rejected} rejected); nothing was filed. "
        f"First failure: {tally.first_failure}.",
        "A rerun asks the failed rows again"
        + (" (lower --min-confidence to keep more)." if options.min_confidence else "."),
    )
