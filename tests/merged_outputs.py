"""What the merge tests and the family tests both read: the folder a verb saved, and a model's
logits on fixed probe sentences (to compare a merged model with the adapter model it came from)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

PROBES = ["which topic : oven salt recipe", "a plain sentence about trains and hotels"]


def saved(result: Any) -> Path:
    """The path a successful verb printed last (``saved PATH``)."""
    assert result.exit_code == 0, result.stderr
    return Path(result.stdout.strip().splitlines()[-1].removeprefix("saved "))


def logits(model: Any, tokenizer: Any) -> torch.Tensor:
    """``model``'s logits on :data:`PROBES`, flattened into one tensor."""
    with torch.inference_mode():
        return torch.cat([model(**tokenizer(text, return_tensors="pt")).logits.flatten() for text in PROBES])
