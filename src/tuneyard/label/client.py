"""One question to the teacher, asked until it gets an answer or runs out of retries.

The request goes through the ``openai`` package's ``AsyncOpenAI`` with ``base_url`` (any
OpenAI-compatible server: vLLM, llama.cpp's, TGI, OpenAI itself): a chat completion for a
teacher's label (:meth:`TeacherClient.ask`), a plain completion of an already rendered prompt
for ``tuneyard eval --backend server`` (:meth:`TeacherClient.complete`). The client's own
retries are turned off and this module retries instead, because the policy needs more
than the client offers: every attempt (retries included) waits for the shared
requests-per-minute pace, a 200 whose body is not a chat completion is retried like a
5xx, and every attempt is recorded with its outcome and tokens for the cost log.

A 400 to a request that asked for structured output or log-probabilities is taken as
the server not supporting them: the request falls back (a ``json_schema`` response
format to llama.cpp's ``json_object`` with a schema, then none; log-probabilities to
none) for the rest of the job and the question is asked again at once (recorded in
:attr:`TeacherClient.dropped`). 401, 403 and 404 end
the job (:class:`TeacherRefused`): every other row would get the same answer.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tuneyard.errors import TuneyardError
from tuneyard.label.limits import RequestPace, retry_delay

JSON_SCHEMA_FALLBACK = "response_format json_schema -> json_object with the schema"
OPTIONAL_FIELDS = ("response_format", "logprobs")  # a server may refuse these; asked without then
FATAL_STATUSES = {401: "refused the API key", 403: "refused access", 404: "does not know the model or path"}


@dataclass
class Attempt:
    """One HTTP request: what came of it and what it cost."""

    outcome: str  # "ok", "429", "500", "timeout", "connection", "malformed", "400"...
    seconds: float
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Reply:
    """The teacher's answer text, its probability where the server gave log-probabilities."""

    text: str
    confidence: float | None
    attempts: list[Attempt] = field(default_factory=list)


class RequestFailed(Exception):
    """Every attempt failed; ``reason`` says how the last one did."""

    def __init__(self, reason: str, attempts: list[Attempt], unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts
        self.unreachable = unreachable


class TeacherRefused(TuneyardError):
    """The server refuses every request (bad key, unknown model): the job stops."""


class TeacherClient:
    """Asks the teacher (or, for `eval --backend server`, the model under test); shared by all workers."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        model: str,
        *,
        timeout: float,
        max_retries: int,
        pace: RequestPace,
        request: dict[str, Any],
    ) -> None:
        from openai import AsyncOpenAI

        self.client = AsyncOpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)
        self.api_key = api_key
        self.base_url = base_url
        self.model = model
        self.max_retries = max_retries
        self.pace = pace
        self.request = dict(request)
        self.dropped: list[str] = []

    async def close(self) -> None:
        await self.client.close()

    async def ask(self, messages: list[dict[str, Any]]) -> Reply:
        """The teacher's reply to ``messages`` (raises :class:`RequestFailed` after the retries)."""
        return await self._asked(lambda: self._chat(messages))

    async def complete(self, prompt: str) -> Reply:
        """The server's continuation of ``prompt``, a text already rendered through the chat template
        (``/v1/completions``: the server applies no template of its own), retried as :meth:`ask` is."""
        return await self._asked(lambda: self._completion(prompt))

    async def _chat(self, messages: list[dict[str, Any]]) -> tuple[Any, str | None]:
        raw = await self.client.chat.completions.with_raw_response.create(
            model=self.model, messages=messages, **self.request
        )
        completion = raw.parse()
        return completion, completion.choices[0].message.content

    async def _completion(self, prompt: str) -> tuple[Any, str | None]:
        raw = await self.client.completions.with_raw_response.create(
            model=self.model, prompt=prompt, **self.request
        )
        completion = raw.parse()
        return completion, completion.choices[0].text

    async def _asked(self, send: Callable[[], Awaitable[tuple[Any, str | None]]]) -> Reply:
        """``send``'s reply, each attempt paced and recorded, retried as the module says."""
        attempts: list[Attempt] = []
        retry = 0
        while True:
            await self.pace.wait()
            started = time.monotonic()
            outcome, detail, headers = await self._attempt(send, started, attempts)
            if outcome == "ok":
                return detail
            if outcome == "unsupported":
                continue  # asked again at once without the option the server refused
            retry += 1
            if outcome not in RETRIED or retry > self.max_retries:
                raise RequestFailed(detail, attempts, unreachable=outcome == "connection")
            await asyncio.sleep(retry_delay(retry, headers))

    async def _attempt(
        self, send: Callable[[], Awaitable[tuple[Any, str | None]]], started: float, attempts: list[Attempt]
    ) -> tuple[str, Any, Any]:
        """One request: ``("ok", Reply, None)`` or ``(outcome, reason, response headers)``."""
        import openai

        try:
            completion, text = await send()
            if text is None:
                raise ValueError("the reply has no message content")
        except openai.APITimeoutError:
            return self._failed(attempts, started, "timeout", "timed out", None)
        except openai.APIConnectionError as exc:
            reason = f"cannot connect: {self.scrub(str(exc))}"
            return self._failed(attempts, started, "connection", reason, None)
        except openai.APIStatusError as exc:
            return self._status_error(exc, attempts, started)
        except (openai.APIResponseValidationError, ValueError, KeyError, IndexError, TypeError) as exc:
            reason = f"malformed reply: {str(exc).splitlines()[0][:120]}"
            return self._failed(attempts, started, "malformed", reason, None)
        usage = completion.usage
        attempt = Attempt(
            "ok",
            time.monotonic() - started,
            prompt_tokens=(usage.prompt_tokens or 0) if usage else 0,
            completion_tokens=(usage.completion_tokens or 0) if usage else 0,
        )
        attempts.append(attempt)
        return "ok", Reply(text, confidence(completion), attempts), None

    def _status_error(self, exc: Any, attempts: list[Attempt], started: float) -> tuple[str, Any, Any]:
        status = exc.status_code
        if status in FATAL_STATUSES:
            raise TeacherRefused(
                f"{self.base_url} {FATAL_STATUSES[status]} ({status}): {self.scrub(_message(exc))}",
                "Check the key's environment variable (--api-key-env), --teacher and --base-url.",
            )
        refused = self._refused_option(status, _message(exc))
        if refused is not None:
            self._fall_back(refused)
            attempts.append(Attempt(str(status), time.monotonic() - started))
            return "unsupported", None, None
        reason = f"HTTP {status}: {self.scrub(_message(exc))}"
        return self._failed(attempts, started, str(status), reason, exc.response.headers)

    def scrub(self, text: str) -> str:
        """``text`` with the API key blanked out (a server may echo what it was sent)."""
        return text.replace(self.api_key, "[api key]") if self.api_key else text

    def _refused_option(self, status: int, message: str) -> str | None:
        """The optional request field an error is about (None: it is about something else).

        A 400 / 422 names it or not (then the first one asked for is taken); some servers
        (llama-cpp-python's) answer a field they do not accept with a 500 that names it.
        """
        asked = [option for option in OPTIONAL_FIELDS if option in self.request]
        named = [option for option in asked if option in message]
        if named and (status in (400, 422) or status >= 500):
            return named[0]
        return asked[0] if asked and status in (400, 422) else None

    def _fall_back(self, option: str) -> None:
        """Ask in the simpler form the server may take, or without ``option``; noted in :attr:`dropped`."""
        value = self.request.pop(option)
        if option == "response_format" and value["type"] == "json_schema":
            # llama.cpp's servers take the schema in a json_object request instead.
            self.request[option] = {"type": "json_object", "schema": value["json_schema"]["schema"]}
            self.dropped.append(JSON_SCHEMA_FALLBACK)
            return
        if option == "logprobs":
            self.request.pop("top_logprobs", None)
        self.dropped.append(option)

    @staticmethod
    def _failed(
        attempts: list[Attempt], started: float, outcome: str, reason: str, headers: Any
    ) -> tuple[str, str, Any]:
        attempts.append(Attempt(outcome, time.monotonic() - started))
        return outcome, reason, headers


RETRIED = frozenset({"timeout", "connection", "malformed", "408", "409", "429"}) | {
    str(s) for s in range(500, 600)
}


def confidence(completion: Any) -> float | None:
    """The teacher's probability of its whole answer: exp of the summed token log-probabilities."""
    choice = completion.choices[0]
    tokens = getattr(getattr(choice, "logprobs", None), "content", None)
    if not tokens:
        return None
    return math.exp(sum(token.logprob for token in tokens))


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        error = body.get("error", body)
        text = error.get("message") if isinstance(error, dict) else error
        if text:
            return str(text)[:200]
    return str(getattr(exc, "message", exc))[:200]
