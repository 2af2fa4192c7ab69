"""What every evaluation loop shares: the device, length-sorted batches, speed and memory.

A task type's evaluation (:mod:`tuneyard.task_types`) scores its own outputs; how fast
it ran and how much memory it took are measured the same way for all of them, so the
numbers compare across task types.
"""

from __future__ import annotations

import math
import resource
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

DEFAULT_MAX_LENGTH = 512


def choose_device(requested: str | None) -> torch.device:
    """``--device`` if given, else the first CUDA GPU when there is one, else the CPU."""
    import torch

    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class Throughput:
    """How fast the forward passes ran and how much memory they took at peak."""

    samples: int
    seconds: float
    batch_size: int
    max_length: int
    device: str
    peak_memory_mb: float
    memory_measure: str  # "cuda_max_allocated" or "process_max_rss"
    # How much of the input besides its samples the passes took, by unit ({"audio_seconds": 36.0}):
    # a sample's size varies by task type, so each amount is reported with its own rate per second.
    amounts: dict[str, float] = field(default_factory=dict)

    @property
    def samples_per_second(self) -> float:
        return self.samples / self.seconds if self.seconds > 0 else float("inf")

    def numbers(self) -> dict[str, float]:
        """The figures recorded next to the scores (rounded for tables)."""
        return {
            "samples": self.samples,
            "seconds": round(self.seconds, 4),
            "samples_per_second": round(self.samples_per_second, 2),
            **self.rates(),
            "peak_memory_mb": round(self.peak_memory_mb, 1),
        }

    def rates(self) -> dict[str, float]:
        """Each of :attr:`amounts` and its rate per second (``audio_seconds_per_second``), rounded."""
        rates: dict[str, float] = {}
        for unit, amount in self.amounts.items():
            per_second = amount / self.seconds if self.seconds > 0 else float("inf")
            rates |= {unit: round(amount, 2), f"{unit}_per_second": round(per_second, 2)}
        return rates


def json_number(value: float) -> float | None:
    """NaN / infinity become null: strict JSON has no spelling for them."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def max_length_for(model: Any, tokenizer: Any, requested: int | None) -> int:
    """Longest input to feed: the request, capped by tokenizer and position table.

    Two positions are kept free because RoBERTa-style models offset positions by the
    padding index; for BERT it costs two tokens of context on very long inputs.
    """
    limits = [requested or DEFAULT_MAX_LENGTH, int(tokenizer.model_max_length)]
    positions = getattr(model.config, "max_position_embeddings", None)
    if positions:
        limits.append(int(positions) - 2)
    return min(limits)


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Example indices grouped into batches of similar length, longest first.

    Longest first makes the first batch the biggest, so an out-of-memory error comes
    at once rather than at the end.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def peak_memory(device: torch.device) -> tuple[float, str]:
    """Peak memory in MiB: CUDA allocations on a GPU, else the process's max RSS."""
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20, "cuda_max_allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return (rss / 2**20 if sys.platform == "darwin" else rss / 1024), "process_max_rss"
