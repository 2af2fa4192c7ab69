"""How a causal LM's answers are decoded and graded: the options of ``generate`` and ``eval``.

Kept apart from the generation code so the CLI and the option models load without torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from tuneyard.config import Cli, StrictModel
from tuneyard.data.formatting import TaskGrader, task_grader
from tuneyard.yard.storage import Storage


class GenerationOptions(StrictModel):
    """How answers are decoded."""

    max_new_tokens: int = Field(default=64, gt=0, description="Longest answer, in tokens.")
    do_sample: bool = Field(default=False, description="Sample answers instead of greedy decoding.")
    temperature: float = Field(default=1.0, gt=0, description="With --do-sample: softmax temperature.")
    top_p: float = Field(default=1.0, gt=0, le=1, description="With --do-sample: nucleus top-p.")
    seed: int = Field(default=0, description="With --do-sample: the sampling seed.")
    stop: Annotated[list[str], Cli(repeat=True)] = Field(
        default_factory=list, description="End an answer at this string (repeatable)."
    )

    def generation_config(self, tokenizer: Any) -> Any:
        """transformers' ``GenerationConfig`` for these options (sampling fields only when sampling)."""
        from transformers import GenerationConfig

        sampling = {"temperature": self.temperature, "top_p": self.top_p} if self.do_sample else {}
        return GenerationConfig(
            max_new_tokens=self.max_new_tokens,
            do_sample=self.do_sample,
            stop_strings=self.stop or None,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **sampling,
        )


class AnswerOptions(GenerationOptions):
    """How answers are generated (see :class:`GenerationOptions`) and graded."""

    grader: Annotated[str, Cli(choices_from="tuneyard.components.graders:GRADER_NAMES")] = Field(
        default="exact", description="How an answer is compared with its reference."
    )
    fields: list[str] = Field(default_factory=list, description="json grader: the fields compared.")
    pattern: str | None = Field(default=None, description="regex grader: the pattern the answer must match.")
    choices: list[str] = Field(default_factory=list, description="choice grader: the allowed answers.")

    def graded_by(self, grader: TaskGrader) -> AnswerOptions:
        """These options with ``grader`` (its name, seed 002's or tuneyard's, and its settings) set."""
        from tuneyard.components.graders import grader_name

        settings = {"fields": grader.fields, "pattern": grader.pattern, "choices": grader.choices}
        return self.model_copy(update={"grader": grader_name(grader.name), **settings})

    def grader_settings(self) -> dict[str, Any]:
        """The grader that scores the answers and its settings, as a result records them."""
        return self.model_dump(include={"grader", "fields", "pattern", "choices"})


def answers_for_data(answers: AnswerOptions | None, source: str | Path, storage: Storage) -> AnswerOptions:
    """``answers``, graded by the task's own grader when the data has one and ``answers`` names none.

    ``prepare --task-spec`` records the task's grader in the dataset's manifest
    (``config.format.grader``), read through ``storage`` (the yard's, which holds the
    dataset); a grader given explicitly (``--grader``, ``evals.grader``) overrides it.
    """
    answers = answers or AnswerOptions()
    if "grader" in answers.model_fields_set:
        return answers
    grader = recorded_grader(Path(source), storage)
    return answers.graded_by(grader) if grader is not None else answers


def recorded_grader(folder: Path, storage: Storage) -> TaskGrader | None:
    """The grader a prepared dataset's manifest records for its task (None: none, or no manifest)."""
    from tuneyard.yard.manifest import read_manifest_if_any

    manifest = read_manifest_if_any(folder, storage)
    if manifest is None:
        return None
    return task_grader((manifest.config.get("format") or {}).get("grader"))
