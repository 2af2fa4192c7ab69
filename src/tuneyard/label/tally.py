"""What a labelling job counted and cost: the running tally, the price, and what was filed."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuneyard.label.options import LabelOptions


def price(prompt_tokens: int, completion_tokens: int, options: LabelOptions) -> float | None:
    """The cost at the given prices per million tokens (None when no price is given)."""
    if options.price_prompt is None and options.price_completion is None:
        return None
    return (
        prompt_tokens * (options.price_prompt or 0) + completion_tokens * (options.price_completion or 0)
    ) / 1e6


@dataclass
class Tally:
    """Running counts, shown by the progress bar and filed in the manifest."""

    total: int = 0
    labelled: int = 0
    rejected: int = 0
    failed: int = 0
    from_journal: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    cost: float | None = None
    invalid_answers: list[str] = field(default_factory=list)
    first_failure: str | None = None

    def add(self, entry: dict[str, Any], options: LabelOptions) -> None:
        setattr(self, entry["status"], getattr(self, entry["status"]) + 1)
        for request in entry["requests"]:
            self.requests += 1
            self.prompt_tokens += request["prompt_tokens"]
            self.completion_tokens += request["completion_tokens"]
        self.cost = price(self.prompt_tokens, self.completion_tokens, options)
        if entry["status"] == "rejected" and entry.get("invalid") and len(self.invalid_answers) < 3:
            self.invalid_answers.append(entry["reason"])
        if entry["status"] == "failed" and self.first_failure is None:
            self.first_failure = entry["reason"]


@dataclass
class LabelledDataset:
    """Where the labelled rows went, and what it took."""

    path: Path
    renamed: bool
    tally: Tally
    dropped: list[str]
