"""``preference``: aligning a chat model on preference rows with DPO, ORPO, KTO or SimPO (TRL).

Rows are pairs (a prompt, the chosen and the rejected answer) or KTO's unpaired rows
(``data``); the model, its tokenizer and chat template, generation and the graded eval
are the causal LM's (this task type reuses its roles); training is the ``--objective``'s
TRL trainer (``objectives``, ``training``) with its ``--beta`` and ``--loss-type``
(``options``), against the starting checkpoint where the objective has a reference;
eval adds the objective's rewards on the pairs to the generated answers' grades
(``evaluation``). This module puts them into the roles.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.task_types.base import (
    DataRole,
    EvalResult,
    EvaluationRole,
    ProgressCallback,
    TaskType,
    TrainingRole,
    TrainingSettings,
)
from tuneyard.task_types.causal_lm import ChatGeneration, DecoderModel, GeneratedAnswersEvaluation
from tuneyard.task_types.preference import data
from tuneyard.task_types.preference.objectives import PAIRS
from tuneyard.task_types.preference.options import PreferenceOptions

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.components.distillation import Teacher
    from tuneyard.data.loading import TaskData
    from tuneyard.data.options import ColumnOptions
    from tuneyard.data.tasks import TaskSpec
    from tuneyard.models.checkpoint import StartingCheckpoint

# What an evaluation during training reports: the objective's loss and rewards (KTO's rows have no pairs
# to rank, so no reward accuracy).
PAIR_METRICS = ["loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected"]
UNPAIRED_METRICS = ["loss", "rewards/margins", "rewards/chosen", "rewards/rejected"]


class PreferenceData(DataRole):
    """Preference pairs or KTO rows (see :mod:`.data`)."""

    def recognize(self, column_names: list[str], columns: ColumnOptions) -> int:
        return data.recognizes(column_names, columns)

    def load_folder(
        self, folder: Path, columns: ColumnOptions, require_labels: bool
    ) -> tuple[TaskSpec, dict[str, Dataset]]:
        return data.load_folder(folder, columns)

    def check_lengths(self, task_data: TaskData, tokenizer: Any, settings: TrainingSettings) -> list[str]:
        from tuneyard.task_types.preference.training import check_lengths

        return check_lengths(task_data, tokenizer, settings.max_length, settings.task_options)

    def fitting_max_length(
        self, task_data: TaskData, tokenizer: Any, checkpoint: StartingCheckpoint
    ) -> tuple[int, list[str]] | None:
        from tuneyard.task_types.preference.training import fitting_max_length

        return fitting_max_length(task_data, tokenizer, checkpoint)


class PreferenceModel(DecoderModel):
    """The causal LM's model role, claiming no architecture of its own: a plain decoder folder stays a
    ``causal_lm`` model, a preference run's folder says ``preference`` in its manifest."""

    architecture_mapping = ""


class PreferenceTraining(TrainingRole):
    """The objective's TRL trainer (see :mod:`.training`)."""

    def build_trainer(
        self,
        decoder: Any,
        arguments: Any,
        task_data: TaskData,
        tokenizer: Any,
        settings: TrainingSettings,
        callbacks: list[Any],
        teacher: Teacher | None = None,
    ) -> Any:
        from tuneyard.task_types.preference.training import build_trainer

        return build_trainer(
            decoder, arguments, task_data, tokenizer, callbacks, settings.max_length, settings.task_options
        )

    def metric_names(self, spec: TaskSpec) -> list[str]:
        return list(PAIR_METRICS if spec.problem == PAIRS else UNPAIRED_METRICS)


class PreferenceEvaluation(EvaluationRole):
    """The causal LM's graded answers on the prompts, and the objective's rewards (:mod:`.evaluation`)."""

    def evaluate(
        self,
        decoder: Any,
        tokenizer: Any,
        dataset: Dataset,
        spec: TaskSpec,
        split: str,
        batch_size: int,
        max_length: int | None,
        progress: ProgressCallback | None = None,
        answers: Any = None,
        task_options: Any = None,
    ) -> EvalResult:
        from tuneyard.components.throughput import max_length_for
        from tuneyard.task_types.preference.evaluation import answer_rows, reward_scores

        rows = answer_rows(dataset, spec)
        result = GeneratedAnswersEvaluation().evaluate(
            decoder, tokenizer, rows, spec, split, batch_size, max_length, progress, answers
        )
        length = max_length_for(decoder, tokenizer, max_length)
        result.metrics.update(
            reward_scores(decoder, tokenizer, dataset, spec, batch_size, length, task_options)
        )
        return result


TASK_TYPE = TaskType(
    name=data.NAME,
    summary="preference pairs or judged completions to an aligned chat model (DPO, ORPO, KTO, SimPO)",
    hub_task="text-generation",
    data=PreferenceData(),
    model=PreferenceModel(),
    training=PreferenceTraining(),
    evaluation=PreferenceEvaluation(),
    generation=ChatGeneration(),
    options=PreferenceOptions,
)
