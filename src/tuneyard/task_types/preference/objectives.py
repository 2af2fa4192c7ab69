"""The preference objectives: one row per ``--objective``, naming TRL's trainer and config for it.

DPO and KTO score the policy against a frozen reference (the starting checkpoint);
ORPO and SimPO need none. SimPO is TRL's ``CPOTrainer`` with ``loss_type="simpo"`` and
no behaviour-cloning term (``cpo_alpha=0``), as TRL's documentation gives it. KTO
trains on unpaired rows (a completion and whether it is desirable), the others on pairs.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

PAIRS, UNPAIRED = "pairs", "unpaired"


@dataclass(frozen=True)
class Objective:
    """One preference objective: TRL's classes (``module:name``), its loss types, defaults and rows."""

    name: str
    trainer: str
    config: str
    loss_types: tuple[str, ...]  # the first is the default
    beta: float
    reference: str  # "start" (the starting checkpoint, frozen) or "none"
    rows: str  # PAIRS or UNPAIRED
    fixed: dict[str, Any] = field(default_factory=dict)  # config fields the objective sets itself

    def trainer_class(self) -> type:
        return _load(self.trainer)

    def config_class(self) -> type:
        return _load(self.config)


def _load(target: str) -> type:
    module, _, name = target.partition(":")
    loaded: type = getattr(importlib.import_module(module), name)
    return loaded


DPO_LOSSES = (
    "sigmoid", "hinge", "ipo", "exo_pair", "nca_pair", "robust", "bco_pair", "sppo_hard", "aot",
    "aot_unpaired", "apo_zero", "apo_down", "discopop", "sigmoid_norm",
)  # fmt: skip

OBJECTIVES: dict[str, Objective] = {
    "dpo": Objective("dpo", "trl:DPOTrainer", "trl:DPOConfig", DPO_LOSSES, 0.1, "start", PAIRS),
    "orpo": Objective(
        "orpo",
        "trl.experimental.orpo:ORPOTrainer",
        "trl.experimental.orpo:ORPOConfig",
        ("orpo",),
        0.1,
        "none",
        PAIRS,
    ),  # fmt: skip
    "kto": Objective(
        "kto",
        "trl:KTOTrainer",
        "trl:KTOConfig",
        ("kto", "apo_zero_unpaired"),
        0.1,
        "start",
        UNPAIRED,
        {"train_sampling_strategy": "sequential"},  # its KL term pairs each row with its batch neighbours
    ),  # fmt: skip
    "simpo": Objective(
        "simpo",
        "trl.experimental.cpo:CPOTrainer",
        "trl.experimental.cpo:CPOConfig",
        ("simpo",),
        2.0,
        "none",
        PAIRS,
        {"cpo_alpha": 0.0},
    ),  # fmt: skip
}
