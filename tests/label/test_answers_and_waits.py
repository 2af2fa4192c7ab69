"""What counts as a valid answer, and how long a retry waits."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from tuneyard.errors import ConfigError
from tuneyard.label.answers import AnswerChecker
from tuneyard.label.limits import BACKOFF_CAP, retry_delay, server_hint
from tuneyard.label.options import AnswerFormat


def test_a_choice_is_matched_loosely_and_returned_as_spelled() -> None:
    checker = AnswerChecker(AnswerFormat(choices=["Games", "net"]))
    assert checker.parse(' "games." ').value == "Games"
    assert checker.parse("NET").value == "net"
    assert checker.parse("graphics").problem == "answer 'graphics' is not one of: Games, net"


def test_a_regex_must_match_the_whole_answer() -> None:
    checker = AnswerChecker(AnswerFormat(regex=r"\d+x\d+"))
    assert checker.parse("8x8").value == "8x8"
    assert "does not match" in (checker.parse("about 8x8").problem or "")


def test_json_answers_are_validated_against_the_schema_even_inside_a_code_fence() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    checker = AnswerChecker(AnswerFormat(json_schema=schema))
    assert checker.parse('```json\n{"n": 3}\n```').value == {"n": 3}
    assert "is not JSON" in (checker.parse("three").problem or "")
    assert "'n' is a required property" in (checker.parse('{"m": 1}').problem or "")
    assert checker.response_format() == {
        "type": "json_schema",
        "json_schema": {"name": "answer", "schema": schema},
    }


def test_bad_formats_are_refused_up_front() -> None:
    with pytest.raises(ConfigError, match="not a valid JSON schema"):
        AnswerChecker(AnswerFormat(json_schema={"type": "nonsense"}))
    with pytest.raises(ConfigError, match="give one answer format, not choices and regex"):
        AnswerFormat(choices=["a"], regex="a")


def test_the_server_hint_wins_in_milliseconds_seconds_or_a_date() -> None:
    assert server_hint({"retry-after-ms": "250", "Retry-After": "9"}) == 0.25
    assert server_hint({"Retry-After": "2"}) == 2.0
    in_four = server_hint({"Retry-After": formatdate(time.time() + 4, usegmt=True)})
    assert in_four is not None and 2.5 < in_four <= 4
    assert server_hint({"Retry-After": "soon"}) is None and server_hint({"Retry-After": "3600"}) is None
    assert 2.0 <= retry_delay(1, {"Retry-After": "2"}) <= 2.2


def test_without_a_hint_the_wait_doubles_with_jitter_up_to_a_cap() -> None:
    for attempt, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (10, BACKOFF_CAP)):
        waits = [retry_delay(attempt, {}) for _ in range(50)]
        assert all(ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(set(waits)) > 1  # jittered: workers told nothing do not return together
