"""Recovery with a teacher: the student learns the labels and the teacher's temperature-softened logits.

A compressed model recovers more of its dense parent's accuracy when it matches that
parent's output distribution than when it sees the labels alone (knowledge
distillation, Hinton et al. 2015). The loss of each batch is

    (1 - weight) * task loss  +  weight * T^2 * KL(softmax(teacher / T) || softmax(student / T))
                              +  hidden_weight * mean_l ||h_l - h'_l||^2 / ||h'_l||^2

with the task loss the model's own (cross-entropy on the labels), ``T`` the
temperature and the ``T^2`` factor keeping the soft term's gradients on the scale of the
hard one's as ``T`` grows. The KL term is over the rows of a classifier, and over the
*tokens that carry a label* of a causal LM (token-level distillation: the answer
tokens of a chat row, every token of plain text), averaged per token. The optional
last term (off by default) matches each transformer layer's output ``h_l`` to the
teacher's ``h'_l`` at the real tokens, relative to its size (the compression papers'
intermediate-layer distillation); it needs the same depth and width on both sides.

The teacher runs in inference mode on the same batch, on the student's device; the
seconds it takes are counted and filed with the run (``metrics.distillation``), so its
cost is on record next to the gain. A teacher must predict the same labels (a
classifier) or the same vocabulary (a causal LM), or it is refused.

Which teacher a run gets, and loading it, is the fine-tuning verb's business
(:mod:`tuneyard.train.distillation`); this module is the loss and the Trainer that adds it.
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
    """How the teacher weighs in; saved in the run's config."""

    weight: float = Field(
        default=0.5, ge=0, le=1, description="Share of the loss from the teacher's logits (KL term)."
    )
    temperature: float = Field(default=2.0, gt=0, description="Softmax temperature of both sides' logits.")
    hidden_weight: float = Field(
        default=0.0, ge=0, description="Weight of the per-layer hidden-state matching term (0: off)."
    )


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


def hidden_state_loss(
    student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...], mask: torch.Tensor
) -> torch.Tensor:
    """Mean over layers of ``||h - h'||^2 / ||h'||^2`` at the positions of ``mask`` (embeddings left out)."""
    import torch

    terms = [
        (s[mask] - t[mask]).pow(2).sum() / t[mask].pow(2).sum().clamp_min(torch.finfo(t.dtype).tiny)
        for s, t in zip(student[1:], teacher[1:], strict=True)
    ]
    return torch.stack(terms).mean()


def label_positions(labels: torch.Tensor) -> torch.Tensor:
    """The logit positions of a causal LM that predict a labelled token (``labels`` shifted by one)."""
    import torch

    predicts = torch.zeros_like(labels, dtype=torch.bool)
    predicts[:, :-1] = labels[:, 1:] != -100
    return predicts


def check_teacher_fits(teacher_outputs: str, student_outputs: str, teacher_source: str) -> None:
    """Refuse a teacher whose outputs mean something else: other labels, or another vocabulary.

    The outputs are described in words by each model's task type
    (:meth:`tuneyard.task_types.base.ModelRole.output_space`).
    """
    if teacher_outputs != student_outputs:
        raise ConfigError(
            f"--distill-from {teacher_source} predicts {teacher_outputs}, but this run's model predicts "
            f"{student_outputs}.",
            "Distil from a model fine-tuned on the same task (the dense model this one was compressed "
            "from), or train on the labels alone with --no-distill.",
        )


def check_same_shape(teacher: Any, student: Any, teacher_source: str) -> None:
    """Hidden-state matching needs the same number of layers and the same width on both sides."""
    shapes = [(model.config.num_hidden_layers, model.config.hidden_size) for model in (teacher, student)]
    if shapes[0] != shapes[1]:
        raise ConfigError(
            f"--distill-hidden-weight matches layer outputs, but {teacher_source} has "
            f"{shapes[0][0]} layers of width {shapes[0][1]} and this run's model {shapes[1][0]} of width "
            f"{shapes[1][1]}.",
            "Leave --distill-hidden-weight at 0, or distil from the model this one was compressed from.",
        )


def unwrapped_model(model: Any) -> Any:
    """The transformers model inside a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@dataclass
class Teacher:
    """The model a run distils from, and how much it weighs."""

    model: Any
    options: DistillOptions


def distilling_trainer_class(base: type, token_level: bool = False) -> type:
    """``base`` (a Trainer class) whose training loss adds the teacher's terms (see the module).

    ``token_level``: a causal LM, distilled at the positions that predict a labelled token.
    """

    class DistillingTrainer(base):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, teacher: Teacher, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # Where the Trainer puts the student and each batch (a GPU when there is one), not
            # where the student was when the teacher loaded: the Trainer moves it later.
            self.teacher = teacher.model.to(self.args.device)
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
            if not model.training:  # evaluation scores the task alone, comparable with any other run
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            hidden = self.distill.hidden_weight > 0
            extra = {"use_cache": False} if token_level else {}
            outputs = model(**inputs, **extra, output_hidden_states=hidden)
            teacher_outputs = self._teacher_outputs(inputs, extra, hidden)
            loss = (1 - self.distill.weight) * outputs.loss + self.distill.weight * self._soft_loss(
                outputs.logits, teacher_outputs.logits, inputs
            )
            if hidden:
                mask = inputs["attention_mask"].bool()
                states = hidden_state_loss(outputs.hidden_states, teacher_outputs.hidden_states, mask)
                loss = loss + self.distill.hidden_weight * states
            return (loss, outputs) if return_outputs else loss

        def _teacher_outputs(self, inputs: dict[str, Any], extra: dict[str, Any], hidden: bool) -> Any:
            import torch

            started = time.perf_counter()
            with torch.no_grad():  # not inference_mode: the KL term keeps these logits for backward
                features = {key: value for key, value in inputs.items() if key != "labels"}
                outputs = self.teacher(**features, **extra, output_hidden_states=hidden)
            self.teacher_seconds += time.perf_counter() - started
            self.teacher_batches += 1
            return outputs

        def _soft_loss(self, student: torch.Tensor, teacher: torch.Tensor, inputs: dict[str, Any]) -> Any:
            if token_level:
                positions = label_positions(inputs["labels"])
                student, teacher = student[positions], teacher[positions]
            return distillation_loss(student, teacher.to(student.dtype), self.distill.temperature)

        def cost(self) -> dict[str, float]:
            """The teacher's forward passes, for the run's manifest."""
            return {
                "teacher_seconds": round(self.teacher_seconds, 6),  # a tiny teacher takes well under 10 ms
                "teacher_batches": self.teacher_batches,
            }

    return DistillingTrainer
