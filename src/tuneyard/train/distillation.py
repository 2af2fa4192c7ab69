"""Which teacher a recovery run distils from, and loading it.

Default teacher: a ``lowrank`` run of a model compressed from a fine-tuned model of
the yard distils from that model (:func:`default_teacher`) when it predicts the same
labels; ``--no-distill`` trains on the labels alone. The loss itself is
:mod:`tuneyard.components.distillation`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.components.distillation import (
    DistillOptions,
    Teacher,
    check_same_shape,
    check_teacher_fits,
    unwrapped_model,
)

if TYPE_CHECKING:
    from tuneyard.models.checkpoint import StartingCheckpoint
    from tuneyard.task_types.base import TaskType
    from tuneyard.yard.root import Yard


def default_teacher(parent: StartingCheckpoint, strategy: str, yard: Yard) -> str | None:
    """The dense fine-tuned model a compressed checkpoint came from, for a ``lowrank`` run; else None.

    Found through the compressed folder's manifest (its ``base`` parent), and taken only
    when that parent is a fine-tuning result of the yard still on disk (a run, a
    ``finetuned`` model, or the ``best/`` / ``last/`` model a run saved): a pretrained
    base has no task knowledge to pass on.
    """
    from tuneyard.yard.lineage import parent_links, read_record, resolve

    if strategy != "lowrank" or not parent.local:
        return None
    record = read_record(yard, Path(parent.source))
    bases = [link for link in parent_links(record or {}) if link.get("role") == "base"]
    if not bases:
        return None
    found = resolve(yard, bases[0])
    if found.state != "artifact" or not _fine_tuned(yard, found.record or {}):
        return None
    recorded = yard.absolute(bases[0]["path"])
    return str(recorded if recorded.is_dir() else yard.absolute(found.path))


def _fine_tuned(yard: Yard, record: dict[str, Any]) -> bool:
    """A run's manifest, or a model saved by one (its ``run`` parent is a run)."""
    from tuneyard.yard.lineage import parent_links, resolve
    from tuneyard.yard.manifest import TRAINING_KINDS

    if record.get("kind") in TRAINING_KINDS:
        return True
    runs = [resolve(yard, link) for link in parent_links(record) if link.get("role") == "run"]
    return any((run.record or {}).get("kind") in TRAINING_KINDS for run in runs)


def load_teacher(source: str, student: Any, options: DistillOptions, task_type: TaskType) -> Teacher:
    """The teacher model, frozen, in eval mode; refused if it does not fit. The trainer places it.

    ``task_type``: the student's; the teacher's outputs are described by its own
    recorded task type (the student's when it records none).
    """
    from tuneyard.task_types.model_loading import load, task_type_of_model

    model = load(source)
    teacher_type = task_type_of_model(source) or task_type
    check_teacher_fits(
        teacher_type.model.output_space(unwrapped_model(model)),
        task_type.model.output_space(unwrapped_model(student)),
        source,
    )
    if options.hidden_weight > 0:
        check_same_shape(unwrapped_model(model), unwrapped_model(student), source)
    model.requires_grad_(False)
    return Teacher(model.eval(), options)
