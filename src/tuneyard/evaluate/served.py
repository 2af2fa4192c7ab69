"""``tuneyard eval --backend server``: a chat model's answers from an OpenAI-compatible server, graded here.

Each prompt is rendered here, by the model's tokenizer and chat template, with the call the
in-process eval makes (the task type's ``render_prompts``), and sent as a plain completion
(``/v1/completions``), so the server applies no template of its own and both backends
answer the same text. Decoding is greedy: temperature 0, and llama.cpp's repeat penalty off
(``repeat_penalty: 1`` is sent to every server, :mod:`.model_server`). Answers are cut
at the stop strings and stripped as in-process ones, then graded by the same grader into
the same files (``predictions.jsonl``, ``grader_logs/``, ``metrics.json``, which also
records the server) and the same metrics, less the references' perplexity: that needs
every prompt token's log-probability, which OpenAI-compatible servers do not all return.

Requests go through the labelling client (:class:`tuneyard.label.client.TeacherClient`):
its retries, back-off and the refusal of a bad key hold here too; ``batch_size`` requests
are in flight at once. The API key comes from the environment only (``--api-key-env``).
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.components.throughput import Throughput
from tuneyard.errors import EvaluationError
from tuneyard.evaluate.model_server import GREEDY_FIELDS, ServedModel, server_kind, serving
from tuneyard.evaluate.options import ServerOptions
from tuneyard.task_types import get_task_type
from tuneyard.task_types.base import ProgressCallback
from tuneyard.task_types.causal_lm.evaluation import GradedResult, answer_grader, grade_generations
from tuneyard.task_types.causal_lm.generation import Generation, Generations, cut_at_stop, plain_request
from tuneyard.task_types.causal_lm.options import AnswerOptions

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.data.loading import TaskData
    from tuneyard.label.client import TeacherClient

REQUEST_SECONDS = 600.0  # a request waits its turn on a server that answers one at a time (llama.cpp's)
RETRIES = 3
NO_KEY = "no-key"  # what the client sends when the environment holds no key (local servers need none)


def check_servable(data: TaskData, checkpoint: str | Path, server: ServerOptions, answers: Any) -> None:
    """Before any work: chat prompts to answer (not classifier rows or plain text), a server that can
    serve ``checkpoint`` (:func:`~.model_server.server_kind`), and greedy decoding."""
    server_kind(checkpoint, server)
    if getattr(answers, "do_sample", False):
        raise EvaluationError(
            "--backend server decodes greedily (temperature 0), so its answers compare with in-process ones.",
            "Leave out --do-sample.",
        )
    generation = get_task_type(data.spec.task_type).generation
    if generation is None or not generation.has_prompts(data.spec):
        kind = "plain text" if generation is not None else f"{data.spec.task_type} rows"
        raise EvaluationError(
            f"--backend server asks a server for answers to chat prompts, and {data.source} holds {kind}.",
            "Evaluate it in-process (--backend transformers, the default).",
        )


def server_api_key(options: ServerOptions) -> str:
    """The key from its environment variable, or a placeholder when unset (a local server needs none)."""
    return os.environ.get(options.api_key_env) or NO_KEY


def evaluate_served(
    checkpoint: str | Path,
    folder: Path,
    data: TaskData,
    rows: Dataset,
    split: str,
    answers: AnswerOptions,
    server: ServerOptions,
    concurrency: int,
    progress: ProgressCallback | None = None,
) -> GradedResult:
    """Ask the server for every row's answer and grade them (see the module's note)."""
    check_servable(data, checkpoint, server, answers)
    prompts = rendered_prompts(folder, data, rows)
    grader = answer_grader(answers, rows)  # bad grader settings fail before a server starts
    api_key = server_api_key(server)
    with serving(checkpoint, folder, server, api_key) as served:
        generations = asyncio.run(ask_all(served, api_key, rows, prompts, answers, concurrency, progress))
    throughput = Throughput(
        len(rows),
        generations.seconds,
        concurrency,
        0,
        f"{served.server} server",
        float("nan"),
        "not measured",
    )
    result = grade_generations(grader, generations, data.spec, split, answers, throughput, None)
    result.backend = served.record()
    return result


def rendered_prompts(folder: Path, data: TaskData, rows: Dataset) -> list[str]:
    """Each row's prompt through the model's chat template, as the in-process eval renders it."""
    from tuneyard.models.loading import load_tokenizer

    generation = get_task_type(data.spec.task_type).generation
    assert generation is not None  # check_servable
    tokenizer = generation.prepare_tokenizer(load_tokenizer(folder), data.spec, str(folder))
    if generation.prompt_images(tokenizer, rows) is not None:
        raise EvaluationError(
            f"{data.source}'s prompts carry images, and a served eval sends text prompts only.",
            "Evaluate it in-process (--backend transformers), or check its GGUF export (tuneyard validate).",
        )
    return generation.render_prompts(tokenizer, rows)


def greedy_client(served: ServedModel, api_key: str, answers: AnswerOptions) -> TeacherClient:
    """The labelling client, pointed at the served model, asking for greedy answers of the set length."""
    from tuneyard.label.client import TeacherClient
    from tuneyard.label.limits import RequestPace

    request: dict[str, Any] = {"temperature": 0.0, "max_tokens": answers.max_new_tokens}
    if answers.stop:
        request["stop"] = answers.stop
    request["extra_body"] = dict(GREEDY_FIELDS)
    return TeacherClient(
        served.url, api_key, served.model,
        timeout=REQUEST_SECONDS, max_retries=RETRIES, pace=RequestPace(None), request=request,
    )  # fmt: skip


async def ask_all(
    served: ServedModel,
    api_key: str,
    rows: Dataset,
    prompts: list[str],
    answers: AnswerOptions,
    concurrency: int,
    progress: ProgressCallback | None,
) -> Generations:
    """Every row's answer, ``concurrency`` requests in flight, in the split's order."""
    from tuneyard.label.client import RequestFailed, TeacherRefused

    client = greedy_client(served, api_key, answers)
    slots = asyncio.Semaphore(concurrency)

    async def answer(index: int) -> Generation:
        async with slots:
            started = time.perf_counter()
            try:
                reply = await client.complete(prompts[index])
            except RequestFailed as exc:
                raise EvaluationError(
                    f"the server at {served.url} gave no answer to row {rows[index]['id']}: {exc.reason}",
                    "Check that it serves the model under test; a rerun asks every row again.",
                ) from None
            except TeacherRefused as exc:
                raise EvaluationError(
                    exc.message, "Check --api-key-env, --server-url and --server-model."
                ) from None
        if progress is not None:
            progress(1)
        return Generation(
            id=rows[index]["id"],
            prompt=prompts[index],
            request=plain_request(rows[index]["prompt"]),
            prediction=cut_at_stop(reply.text, answers.stop).strip(),
            reference=rows[index]["reference"],
            tokens=reply.attempts[-1].completion_tokens,
            seconds=time.perf_counter() - started,
        )

    started = time.perf_counter()
    try:
        answered = await asyncio.gather(*(answer(index) for index in range(len(prompts))))
    finally:
        await client.close()
    return Generations(rows=list(answered), seconds=time.perf_counter() - started)
