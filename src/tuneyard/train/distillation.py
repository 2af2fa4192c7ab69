"""Recovery with a teacher: the student learns the labels and the teacher's temperature-softened logits.

A compressed model recovers more of its dense parent's accuracy when it matches that
parent's output distribution than when it sees the labels alone (knowledge
distillation, Hinton et al. 2015). The loss of each batch is

    (1 - weight) * task loss  +  weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))

with the task loss the model's own (cross-entropy on the labels), ``T`` the
temperature and the ``T^2`` factor keeping the soft term's gradients on the scale of the
hard one's as ``T`` grows. The teacher runs in inference mode on the same batch, on the
student's device; the seconds it takes are counted and filed with the run
(``metrics.distillation``), so its cost is on record next to the gain.

Sequence classification only so far: a teacher must predict the same labels, in the
same order, or it is refused.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import Field

from tuneyard.config import StrictModel
from tuneyard.errors import ConfigError

if TYPE_CHECKING:
    import torch


class DistillOptions(StrictModel):
    """How the teacher's logits weigh in; saved in the run's config."""

    weight: float = Field(
        default=0.5, ge=0, le=1, description="Share of the loss from the teacher (KL term)."
    )
    temperature: float = Field(default=2.0, gt=0, description="Softmax temperature of both sides' logits.")


def distillation_loss(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """``T^2 * KL(teacher || student)`` of temperature-softened logits, averaged over the rows (batchmean)."""
    import torch.nn.functional as functional

    return (
        functional.kl_div(
            functional.log_softmax(student / temperature, dim=-1),
            functional.log_softmax(teacher / temperature, dim=-1),
            reduction="batchmean",
            log_target=True,
        )
        * temperature**2
    )


def check_same_labels(teacher: Any, student: Any, teacher_source: str) -> None:
    """Refuse a teacher whose labels (or their order) differ from the student's: other logits."""
    teacher_labels = _labels(teacher)
    student_labels = _labels(student)
    if teacher_labels != student_labels:
        raise ConfigError(
            f"--distill-from {teacher_source} predicts the labels {teacher_labels}, "
            f"but this run's model predicts {student_labels}.",
            "Distil from a model fine-tuned on the same task (the dense model this one was compressed from).",
        )


def _labels(model: Any) -> list[str]:
    config = model.config
    return [str(config.id2label[index]) for index in range(config.num_labels)]


@dataclass
class Teacher:
    """The model a run distils from, and how much its logits weigh."""

    model: Any
    options: DistillOptions


def load_teacher(source: str, student: Any, options: DistillOptions) -> Teacher:
    """The teacher model, frozen, in eval mode, on the student's device; refused if its labels differ."""
    from tuneyard.models.loading import load

    model = load(source)
    check_same_labels(model, student, source)
    model.requires_grad_(False)
    return Teacher(model.eval().to(next(student.parameters()).device), options)


def distilling_trainer_class(base: type) -> type:
    """``base`` (a Trainer class) whose loss mixes the labels and the teacher's logits (see the module)."""

    class DistillingTrainer(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, teacher: Teacher, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.teacher = teacher.model
            self.distill = teacher.options
            self.teacher_seconds = 0.0
            self.teacher_batches = 0

        def compute_loss(
            self,
            model: Any,
            inputs: dict[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            import torch

            if not model.training:  # evaluation scores the task alone, comparable with any other run
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            outputs = model(**inputs)
            started = time.perf_counter()
            with torch.no_grad():
                teacher_logits = self.teacher(**{k: v for k, v in inputs.items() if k != "labels"}).logits
            self.teacher_seconds += time.perf_counter() - started
            self.teacher_batches += 1
            soft = distillation_loss(outputs.logits, teacher_logits, self.distill.temperature)
            loss = (1 - self.distill.weight) * outputs.loss + self.distill.weight * soft
            return (loss, outputs) if return_outputs else loss

        def cost(self) -> dict[str, float]:
            """The teacher's forward passes, for the run's manifest."""
            return {
                "teacher_seconds": round(self.teacher_seconds, 2),
                "teacher_batches": self.teacher_batches,
            }

    return DistillingTrainer
