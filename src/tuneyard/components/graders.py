"""Graders for models that answer in text: each turns (prediction, reference) into a score.

* ``exact`` — normalised exact match (case, surrounding whitespace and quotes, inner
  runs of whitespace and trailing ``.!?`` do not count).
* ``contains`` — the normalised reference occurs in the normalised prediction.
* ``regex`` — with a pattern: its first group (or whole match) in the prediction is the
  answer, compared like ``exact``; without one: the reference is a regex that must
  occur in the prediction (case-insensitive).
* ``json`` — the prediction is parsed as JSON (code fences and text after the object
  are tolerated) and chosen fields are compared with the reference's; each field
  earns its share of the score. An answer that does not parse scores 0 and is
  counted separately, since "wrong" and "not JSON" need different fixes.
* ``choice`` — the answer is one label out of a set (``positive`` / ``negative``);
  an answer naming none or several labels is counted as unparsable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tuneyard.errors import EvaluationError

_SPACES = re.compile(r"\s+")
_FENCE = re.compile(r"```[A-Za-z0-9_-]*\s*(.*?)\s*```", re.DOTALL)
_EDGE = "\"'`“”‘’ \t\n"


def normalise(text: Any) -> str:
    """Lower case, whitespace collapsed, surrounding quotes and final ``.!?`` removed."""
    value = _SPACES.sub(" ", str(text)).strip(_EDGE).lower()
    return value.rstrip(".!?").strip(_EDGE)


@dataclass
class Grade:
    """One sample's grade: the score in [0, 1] and how it came about."""

    score: float
    parsed: bool = True
    answer: Any = None  # what the grader read from the prediction
    fields: dict[str, bool] = field(default_factory=dict)
    error: str | None = None


class ExactGrader:
    name = "exact"

    def grade(self, prediction: Any, reference: Any) -> Grade:
        answer = normalise(prediction)
        return Grade(score=float(answer == normalise(reference)), answer=answer)


class ContainsGrader:
    name = "contains"

    def grade(self, prediction: Any, reference: Any) -> Grade:
        return Grade(score=float(normalise(reference) in normalise(prediction)), answer=normalise(prediction))


class RegexGrader:
    name = "regex"

    def __init__(self, pattern: str | None = None) -> None:
        self.pattern = compile_pattern(pattern, "--pattern") if pattern else None

    def grade(self, prediction: Any, reference: Any) -> Grade:
        text = str(prediction)
        if self.pattern is None:
            match = compile_pattern(str(reference), "reference").search(text)
            return Grade(score=float(match is not None), answer=match.group(0) if match else None)
        match = self.pattern.search(text)
        if match is None:
            return Grade(score=0.0, parsed=False, error="pattern not found")
        answer = match.group(1) if match.groups() else match.group(0)
        return Grade(score=float(normalise(answer) == normalise(reference)), answer=answer)


def compile_pattern(pattern: str, source: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise EvaluationError(f"{source} {pattern!r} is not a valid regular expression: {exc}.") from exc


def parse_json_answer(text: Any) -> Any:
    """The first JSON value in ``text``: inside a code fence if there is one, trailing text ignored.

    Raises ``ValueError`` when there is none.
    """
    if not isinstance(text, str):
        return text
    fenced = _FENCE.search(text)
    body = fenced.group(1) if fenced else text
    starts = [i for i in (body.find("{"), body.find("[")) if i >= 0]
    if not starts:
        raise ValueError("no JSON object in the answer")
    value, _ = json.JSONDecoder().raw_decode(body[min(starts) :])
    return value


def same_value(predicted: Any, expected: Any) -> bool:
    """Field equality: strings normalised, numbers by value (``1`` == ``1.0`` == ``"1"``)."""
    if isinstance(expected, (dict, list)) or isinstance(predicted, (dict, list)):
        return bool(predicted == expected)
    if isinstance(expected, (int, float)) and not isinstance(expected, bool):
        try:
            return abs(float(predicted) - float(expected)) <= 1e-9 * max(1.0, abs(float(expected)))
        except (TypeError, ValueError):
            return False
    return normalise(predicted) == normalise(expected)


class JsonGrader:
    name = "json"

    def __init__(self, fields: Sequence[str] = ()) -> None:
        self.fields = list(fields)

    def grade(self, prediction: Any, reference: Any) -> Grade:
        expected = self._reference(reference)
        names = self.fields or sorted(expected)
        missing = [name for name in names if name not in expected]
        if missing:
            raise EvaluationError(
                f"grader field {missing[0]!r} is not in the reference {json.dumps(expected)[:200]}.",
                f"Reference fields: {', '.join(sorted(expected)) or '(none)'}; choose --fields among them.",
            )
        try:
            answer = parse_json_answer(prediction)
        except ValueError as exc:
            return Grade(score=0.0, parsed=False, fields={name: False for name in names}, error=str(exc))
        if not isinstance(answer, dict):
            return Grade(
                score=0.0,
                parsed=False,
                answer=answer,
                fields={name: False for name in names},
                error=f"answer is a JSON {type(answer).__name__}, not an object",
            )
        verdicts = {name: name in answer and same_value(answer[name], expected[name]) for name in names}
        score = sum(verdicts.values()) / len(verdicts) if verdicts else 0.0
        return Grade(score=score, answer=answer, fields=verdicts)

    @staticmethod
    def _reference(reference: Any) -> dict[str, Any]:
        try:
            value = parse_json_answer(reference)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            raise EvaluationError(
                f"reference {str(reference)[:200]!r} is not a JSON object, "
                "so the json grader cannot compare fields.",
                'Store each reference as a JSON object, e.g. {"name": "...", "year": 2020}.',
            )
        return value


class ChoiceGrader:
    name = "choice"

    def __init__(self, choices: Sequence[str]) -> None:
        self.choices = sorted({normalise(choice) for choice in choices if normalise(choice)})
        if len(self.choices) < 2:
            raise EvaluationError(
                f"the choice grader needs at least two choices, got {list(choices)}.",
                "Pass --choices a,b,c (or give references with at least two distinct labels).",
            )

    def pick(self, prediction: Any) -> str | None:
        """The one choice the answer names: the whole answer, else the only one mentioned."""
        answer = normalise(prediction)
        if answer in self.choices:
            return answer
        named = [c for c in self.choices if re.search(rf"(?<!\w){re.escape(c)}(?!\w)", answer)]
        return named[0] if len(named) == 1 else None

    def grade(self, prediction: Any, reference: Any) -> Grade:
        expected = normalise(reference)
        if expected not in self.choices:
            raise EvaluationError(
                f"reference {reference!r} is not one of the choices {', '.join(self.choices)}.",
                "Add it to --choices, or fix the reference.",
            )
        picked = self.pick(prediction)
        if picked is None:
            return Grade(score=0.0, parsed=False, error="answer names none or several of the choices")
        return Grade(score=float(picked == expected), answer=picked)


GRADER_NAMES = ("exact", "contains", "regex", "json", "choice")


def grader_name(name: str) -> str:
    """tuneyard's name of a grader: ``json`` as given, or seed 002's class name ``JSONGrader`` (any case)."""
    key = name.strip().lower().removesuffix("grader")
    if key not in GRADER_NAMES:
        raise EvaluationError(
            f"unknown grader {name!r}.",
            f"Graders: {', '.join(GRADER_NAMES)} (seed 002's JSONGrader is json, ExactGrader is exact).",
        )
    return key


def make_grader(
    name: str,
    fields: Sequence[str] = (),
    pattern: str | None = None,
    choices: Sequence[str] = (),
    references: Sequence[Any] = (),
) -> ExactGrader | ContainsGrader | RegexGrader | JsonGrader | ChoiceGrader:
    """The grader called ``name``; ``choice`` defaults its set to the distinct references."""
    name = grader_name(name)
    if name == "exact":
        return ExactGrader()
    if name == "contains":
        return ContainsGrader()
    if name == "regex":
        return RegexGrader(pattern)
    if name == "json":
        return JsonGrader(fields)
    return ChoiceGrader(list(choices) or [str(reference) for reference in references])
