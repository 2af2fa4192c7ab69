"""The verbs a pipeline step may run: one table, each with its options model and its call.

Every entry takes the verb's own validated options (the same models the CLI builds) and
a yard, runs the library function the CLI calls, and returns the folder it filed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import ValidationFailedError
from tuneyard.task_types.data_loading import load_data

if TYPE_CHECKING:
    from tuneyard.yard.root import Yard


@dataclass(frozen=True)
class Verb:
    """A pipeline step's verb: how to build its options and run it."""

    options_model: str  # "module:Class", imported on use: torch stays unloaded until a step runs
    run: Callable[[Any, Yard], Path]
    resume: Callable[[Path, Yard], Path] | None = None  # continue an interrupted step in its folder

    def options(self) -> type:
        """The verb's options model."""
        import importlib

        module, name = self.options_model.split(":")
        return getattr(importlib.import_module(module), name)


def _prepare(options: Any, yard: Yard) -> Path:
    from tuneyard.data.prepare import prepare_dataset

    return prepare_dataset(options, yard).path


def _label(options: Any, yard: Yard) -> Path:
    from tuneyard.label.labeller import label_dataset

    return label_dataset(options, yard).path


def _finetune(options: Any, yard: Yard) -> Path:
    from tuneyard.train.recipe import finetune

    return finetune(options, yard).path


def _resume_finetune(folder: Path, yard: Yard) -> Path:
    from tuneyard.train.recipe import finetune

    return finetune(None, yard, resume=folder).path  # type: ignore[arg-type]


def _eval(options: Any, yard: Yard) -> Path:
    from tuneyard.evaluate.model_eval import evaluate_model

    outcome = evaluate_model(
        options.checkpoint, load_data(options.in_yard(yard)), yard, split=options.split,
        output_dir=options.output_dir, batch_size=options.batch_size, max_length=options.max_length,
        device=options.device, answers=options.answers, samples=options.nb_eval_samples,
        server=options.server,
    )  # fmt: skip
    return Path(outcome.folder)


def _merge(options: Any, yard: Yard) -> Path:
    from tuneyard.export.merge import merge_model

    return merge_model(options, yard).path


def _export(options: Any, yard: Yard) -> Path:
    from tuneyard.export.exporter import export_model

    return export_model(options, yard).path


def _validate(options: Any, yard: Yard) -> Path:
    from tuneyard.export.agreement import ValidateOptions, validate_exports

    checks = ValidateOptions.model_validate(options.model_dump(exclude={"export"}))
    validation = validate_exports([options.export], checks, yard)[0]
    if not validation.passed:
        raise ValidationFailedError(f"validation of {options.export} failed: {validation.reason}")
    return Path(validation.export)


VERBS: dict[str, Verb] = {
    "prepare": Verb("tuneyard.data.prepare:PrepareOptions", _prepare),
    "label": Verb("tuneyard.label.options:LabelOptions", _label),
    "finetune": Verb("tuneyard.train.options:FinetuneOptions", _finetune, resume=_resume_finetune),
    "eval": Verb("tuneyard.evaluate.options:EvalOptions", _eval),
    "merge": Verb("tuneyard.export.merge:MergeOptions", _merge),
    "export": Verb("tuneyard.export.exporter:ExportOptions", _export),
    "validate": Verb("tuneyard.export.agreement:PipelineValidateOptions", _validate),
}
