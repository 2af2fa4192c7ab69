"""Held-out scores of a compression: the model measured on validation rows before and after.

A decoder's compression is judged by its perplexity on text it never calibrated on
(the papers' yardstick: SVD-LLM, ASVD); the task type says what it scores
(:attr:`tuneyard.task_types.base.TaskType.held_out_metrics`), this module measures it on
the first ``--held-out-samples`` rows of the validation split, so before and after
read exactly the same tokens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tuneyard.compress.calibration import held_out_batches

if TYPE_CHECKING:
    from tuneyard.compress.options import CompressOptions
    from tuneyard.compress.statistics import Batch
    from tuneyard.data.loading import TaskData
    from tuneyard.task_types.base import TaskType


@dataclass
class HeldOut:
    """The held-out batches and the scores on them: the dense model's, then the compressed one's."""

    task_type: TaskType | None = None
    batches: list[Batch] = field(default_factory=list)
    rows: int = 0
    before: dict[str, float] = field(default_factory=dict)
    after: dict[str, float] = field(default_factory=dict)

    @classmethod
    def measure(
        cls, task_type: TaskType, model: Any, tokenizer: Any, data: TaskData | None, options: CompressOptions
    ) -> HeldOut:
        """Score the dense ``model`` (nothing, when the task type scores nothing or there is no data)."""
        if data is None or not task_type.held_out_metrics:
            return cls()
        batches = held_out_batches(
            data, task_type, tokenizer, options.held_out_samples, options.batch_size, options.max_length
        )
        if not batches:
            return cls()
        rows = sum(len(batch["input_ids"]) for batch in batches)
        return cls(task_type, batches, rows, before=task_type.held_out_scores(model, batches))

    def measure_after(self, model: Any) -> None:
        """Score the compressed ``model`` on the same batches."""
        if self.task_type is not None:
            self.after = self.task_type.held_out_scores(model, self.batches)

    def metrics(self) -> dict[str, float]:
        """``{name}_before`` / ``{name}_after`` and ``held_out_rows``, for the manifest and the index."""
        if not self.before:
            return {}
        scores = {f"{name}_before": value for name, value in self.before.items()}
        return (
            scores
            | {f"{name}_after": value for name, value in self.after.items()}
            | {"held_out_rows": self.rows}
        )

    def table(self) -> list[tuple[str, float, float]]:
        """``(metric, before, after)`` rows for the printed summary."""
        return [(name, value, self.after[name]) for name, value in self.before.items() if name in self.after]
