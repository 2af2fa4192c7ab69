"""Is a teacher's answer valid? A choice set, a regex or a JSON schema decides.

The answer text is compared after trimming whitespace, surrounding quotes and a final
full stop (``"Games."`` is the choice ``games``), case-insensitively, and the choice is
returned as spelled in the choice set. A JSON answer may come inside a Markdown code
fence; it is validated with ``jsonschema``. Where the schema is known, the request asks
the server for structured output (``response_format``); servers that refuse it fall back
to plain answers checked here (:mod:`tuneyard.label.client`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tuneyard.errors import ConfigError
from tuneyard.label.options import AnswerFormat

FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


@dataclass(frozen=True)
class Parsed:
    """An answer's parsed value, or why it is not valid (exactly one is set)."""

    value: Any = None
    problem: str | None = None


class AnswerChecker:
    """Parses and validates answers against one :class:`AnswerFormat`."""

    def __init__(self, answer: AnswerFormat) -> None:
        self.answer = answer
        self.pattern = _compile(answer.regex) if answer.regex is not None else None
        self.validator = _schema_validator(answer.json_schema) if answer.json_schema is not None else None
        self.by_folded = {choice.casefold(): choice for choice in answer.choices or []}

    def response_format(self) -> dict[str, Any] | None:
        """The structured-output request for a JSON-schema answer (None for the others)."""
        if self.answer.json_schema is None:
            return None
        return {"type": "json_schema", "json_schema": {"name": "answer", "schema": self.answer.json_schema}}

    def parse(self, text: str) -> Parsed:
        """The valid value of ``text``, or the problem with it in words."""
        if self.validator is not None:
            return self._parse_json(text)
        trimmed = text.strip().strip("\"'`").strip().removesuffix(".").strip()
        if self.by_folded:
            choice = self.by_folded.get(trimmed.casefold())
            if choice is None:
                return Parsed(
                    problem=f"answer {_short(text)} is not one of: {', '.join(self.by_folded.values())}"
                )
            return Parsed(value=choice)
        if self.pattern is not None and self.pattern.fullmatch(trimmed) is None:
            return Parsed(problem=f"answer {_short(text)} does not match {self.pattern.pattern!r}")
        return Parsed(value=trimmed)

    def _parse_json(self, text: str) -> Parsed:
        from jsonschema import ValidationError

        body = text.strip()
        fenced = FENCE.match(body)
        try:
            value = json.loads(fenced.group(1) if fenced else body)
        except json.JSONDecodeError as exc:
            return Parsed(problem=f"answer {_short(text)} is not JSON ({exc.msg})")
        try:
            self.validator.validate(value)  # type: ignore[union-attr]
        except ValidationError as exc:
            return Parsed(problem=f"answer {_short(text)} does not match the schema: {exc.message}")
        return Parsed(value=value)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"--answer-regex {pattern!r} is not a regular expression: {exc}.") from None


def _schema_validator(schema: dict[str, Any]) -> Any:
    from jsonschema import SchemaError
    from jsonschema.validators import validator_for

    validator = validator_for(schema)
    try:
        validator.check_schema(schema)
    except SchemaError as exc:
        raise ConfigError(f"--answer-schema is not a valid JSON schema: {exc.message}.") from None
    return validator(schema)


def _short(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")
