"""How long to wait: a requests-per-minute pace shared by all workers, and retry back-off."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime

BACKOFF_FIRST = 0.5  # seconds before the first retry
BACKOFF_CAP = 20.0
RETRY_AFTER_CAP = 300.0  # a longer Retry-After is treated as no hint


class RequestPace:
    """Spaces request starts ``60 / requests_per_minute`` seconds apart across all workers.

    A slot is reserved before waiting, so concurrent workers queue in order instead of
    bursting when the window opens; ``None`` sets no pace.
    """

    def __init__(self, requests_per_minute: float | None) -> None:
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self.next_slot = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot = max(now, self.next_slot)
        self.next_slot = slot + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


def retry_delay(attempt: int, headers: Mapping[str, str] | None) -> float:
    """Seconds before retry ``attempt`` (1, 2, ...): the server's hint, else exponential with jitter.

    ``retry-after-ms`` (OpenAI's) or ``Retry-After`` (seconds or an HTTP date) win when
    present and sane; a small jitter is added so workers told the same do not return together.
    """
    hinted = server_hint(headers or {})
    if hinted is not None:
        return hinted * random.uniform(1.0, 1.1)
    ceiling = min(BACKOFF_CAP, BACKOFF_FIRST * 2 ** (attempt - 1))
    return ceiling * random.uniform(0.5, 1.0)


def server_hint(headers: Mapping[str, str]) -> float | None:
    """The wait a 429 / 5xx response asks for, in seconds (None: no usable hint)."""
    lowered = {key.lower(): value for key, value in headers.items()}
    seconds: float | None = None
    if "retry-after-ms" in lowered:
        seconds = _number(lowered["retry-after-ms"])
        seconds = None if seconds is None else seconds / 1000
    elif "retry-after" in lowered:
        value = lowered["retry-after"]
        seconds = _number(value)
        if seconds is None:
            try:
                seconds = parsedate_to_datetime(value).timestamp() - time.time()
            except (TypeError, ValueError):
                seconds = None
    if seconds is None or seconds < 0 or seconds > RETRY_AFTER_CAP:
        return None
    return seconds


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None
