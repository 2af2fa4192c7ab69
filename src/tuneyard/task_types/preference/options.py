"""``preference``'s own fine-tuning options (``finetune --help``: "Task type preference").

Recorded in the run's manifest (``config.task_options``) with every default filled in
from the objective's row of :data:`tuneyard.task_types.preference.objectives.OBJECTIVES`,
so a run says which loss, which beta and which reference it trained with.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from tuneyard.config import StrictModel

# The names of tuneyard.task_types.preference.objectives.OBJECTIVES (a test keeps them equal).
Objective = Literal["dpo", "orpo", "kto", "simpo"]
# What the policy is compared with: the starting checkpoint (frozen), or nothing (ORPO, SimPO).
Reference = Literal["start", "none"]


class PreferenceOptions(StrictModel):
    """Which preference objective trains the model, and its main settings (TRL's names)."""

    objective: Objective = Field(
        default="dpo",
        description="The preference loss: 'dpo' (pairs, against a reference), 'orpo' (pairs, no reference), "
        "'kto' (unpaired completion + label rows, against a reference) or 'simpo' (pairs, no reference).",
    )
    beta: float | None = Field(
        default=None,
        gt=0,
        description="The objective's beta (DPO/KTO: how far from the reference; ORPO: the odds-ratio weight; "
        "SimPO: the reward scale); default: TRL's for DPO/ORPO/KTO (0.1), the SimPO paper's 2.0.",
    )
    loss_type: str | None = Field(
        default=None,
        description="TRL's loss_type for the objective (DPO: sigmoid, ipo, hinge, ...; KTO: kto, "
        "apo_zero_unpaired); default: the objective's own.",
    )
    reference: Reference | None = Field(
        default=None,
        description="What the policy is scored against: 'start' (the starting checkpoint, frozen; with LoRA "
        "or QLoRA the base with the adapter disabled) for DPO and KTO, 'none' for ORPO and SimPO; filled in, "
        "not chosen.",
    )

    @model_validator(mode="after")
    def _fill_defaults(self) -> PreferenceOptions:
        from tuneyard.task_types.preference.objectives import OBJECTIVES

        row = OBJECTIVES[self.objective]
        if self.reference is not None and self.reference != row.reference:
            raise ValueError(
                f"objective {self.objective!r} uses reference {row.reference!r}, not {self.reference!r}"
            )
        if self.loss_type is not None and self.loss_type not in row.loss_types:
            raise ValueError(
                f"loss_type {self.loss_type!r} is not one of {self.objective}'s: {', '.join(row.loss_types)}"
            )
        # Assigned (not left to defaults), so the run records every one of them (plan.recorded_task_options).
        self.objective = self.objective
        self.beta = self.beta if self.beta is not None else row.beta
        self.loss_type = self.loss_type or row.loss_types[0]
        self.reference = row.reference
        return self
