"""What ``tuneyard label`` asks, of whom, how fast, and what it keeps."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from tuneyard.config import Cli, StrictModel
from tuneyard.errors import ConfigError

DEFAULT_KEY_ENV = "OPENAI_API_KEY"
RANKS = ("A", "B")  # the answers of a teacher ranking two candidates: the first or the second is better


class AnswerFormat(StrictModel):
    """What a valid teacher answer looks like: one of a choice set, a regex, or a JSON schema."""

    choices: list[str] | None = Field(default=None, description="The answer must be one of these.")
    regex: Annotated[str | None, Cli(flag="--answer-regex")] = Field(
        default=None, description="The answer must match this (fully)."
    )
    json_schema: Annotated[dict | None, Cli(file_flag="--answer-schema")] = Field(
        default=None, description="The answer is JSON valid under this schema."
    )

    @model_validator(mode="after")
    def _at_most_one(self) -> AnswerFormat:
        given = [name for name in ("choices", "regex", "json_schema") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ConfigError(
                f"give one answer format, not {' and '.join(given)}.",
                "--choices a,b,c, or --answer-regex PATTERN, or --answer-schema schema.json.",
            )
        if self.choices is not None and not self.choices:
            raise ConfigError("--choices is empty.", "Example: --choices games,graphics,net")
        return self


class PairOptions(StrictModel):
    """Preference pairs instead of a label column (see :mod:`tuneyard.label.pairs`)."""

    prompt_column: str | None = Field(
        default=None,
        description="The rows' prompt: with --rejected-column or --candidates, file prompt/chosen/rejected "
        "pairs (the preference task type's rows) instead of a label column.",
    )
    rejected_column: str | None = Field(
        default=None,
        description="The teacher writes the chosen answer; this column's answer (e.g. the student's own) is "
        "the rejected one.",
    )
    candidates: list[str] | None = Field(
        default=None,
        description="Two answer columns the teacher ranks: it answers A (the first is better) or B (the "
        "second); the better is chosen, the other rejected.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> PairOptions:
        ways = [flag for flag, value in (("--rejected-column", self.rejected_column),
                                         ("--candidates", self.candidates)) if value is not None]  # fmt: skip
        if len(ways) > 1:
            raise ConfigError(
                "give --rejected-column (the teacher writes the chosen answer) or --candidates (the teacher "
                "ranks two answers), not both.",
                "Drop one of them.",
            )
        if (self.prompt_column is None) != (not ways):
            raise ConfigError(
                "--prompt-column and --rejected-column or --candidates go together: a pair is a prompt and "
                "two answers to it.",
                "Give --prompt-column COLUMN with --rejected-column COLUMN or --candidates FIRST,SECOND.",
            )
        if self.candidates is not None and len(self.candidates) != 2:
            raise ConfigError(
                f"--candidates names {len(self.candidates)} columns; the teacher ranks two.",
                "Example: --candidates tuned_answer,base_answer",
            )
        if self.candidates is not None and len(set(self.candidates)) == 1:
            raise ConfigError(
                f"--candidates names {self.candidates[0]!r} twice: every pair would be one answer against "
                "itself, which teaches no preference.",
                "Name two different answer columns, e.g. --candidates tuned_answer,base_answer",
            )
        return self

    @property
    def wanted(self) -> bool:
        return self.prompt_column is not None


class TeacherOptions(StrictModel):
    """Whom a job asks (any OpenAI-compatible server), how fast, how often again, at what price: the
    fields ``label`` and a judged win rate (``tuneyard.evaluate.win_rate``) share."""

    teacher: str = Field(description="The model name the server serves (the request's 'model').")
    base_url: str = Field(description="The OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1.")
    api_key_env: str = Field(
        default=DEFAULT_KEY_ENV, description="The environment variable holding the API key."
    )
    no_api_key: bool = Field(default=False, description="Send no key (a local server that needs none).")
    concurrency: int = Field(default=8, ge=1, le=512, description="Requests in flight.")
    requests_per_minute: float | None = Field(
        default=None, gt=0, description="Pace all requests, retries included."
    )
    timeout: float = Field(default=60.0, gt=0, description="Seconds per request.")
    max_retries: int = Field(
        default=5, ge=0, description="Retries of a request (429, 5xx, timeout, bad body)."
    )
    answer_retries: int = Field(default=1, ge=0, description="Asks again when the answer is invalid.")
    max_tokens: int = Field(default=64, gt=0, description="Longest answer, in tokens.")
    temperature: float = Field(default=0.0, ge=0, description="Sampling temperature.")
    price_prompt: float | None = Field(default=None, ge=0, description="Price per million prompt tokens.")
    price_completion: float | None = Field(
        default=None, ge=0, description="Price per million completion tokens."
    )


class LabelOptions(TeacherOptions):
    """One labelling job: the rows, the teacher, the prompt, the answer, the limits."""

    data: str = Field(description="A dataset of the yard (by name) or a folder / file of splits.")
    prompt: Annotated[str, Cli(file_flag="--prompt-file")] = Field(
        description="Jinja template over the row's columns: the user message."
    )
    system_prompt: Annotated[str | None, Cli(flag="--system", file_flag="--system-file")] = Field(
        default=None, description="The system prompt."
    )
    answer: Annotated[AnswerFormat, Cli(flatten=True)] = Field(
        default_factory=AnswerFormat, title="Valid answers (at most one)"
    )
    target: str | None = Field(
        default=None,
        description="Jinja template mapping the parsed answer to the student target ({{ answer }}, "
        "plus the row's columns); default: the answer itself.",
    )
    output_column: str = Field(default="label", description="The column the target is written to.")
    pairs: Annotated[PairOptions, Cli(flatten=True)] = Field(
        default_factory=PairOptions, title="Preference pairs (instead of a label column)"
    )
    image_column: str | None = Field(default=None, description="Send this column's image as a data URL.")
    image_preprocess: str | None = Field(
        default=None,
        description="Send each image as the --student model sees it after this preprocessing ('processor' or "
        "'llamacpp', as finetune's --image-preprocess), not the file as it is.",
    )
    student: str | None = Field(
        default=None,
        description="With --image-preprocess: the vision-language checkpoint (folder or hub id) whose image "
        "sizes the teacher's images follow.",
    )
    splits: Annotated[list[str] | None, Cli(flag="--split", repeat=True)] = Field(
        default=None, description="Label only this split (repeat; default: all)."
    )
    name: str | None = Field(default=None, description="The new dataset's name (default: DATA-labelled).")
    logprobs: bool = Field(default=True, description="Ask for log-probabilities (the confidence).")
    min_confidence: float | None = Field(
        default=None, ge=0, le=1, description="Keep apart answers whose probability is lower."
    )
    output_dir: Annotated[str | None, Cli(path=True)] = Field(
        default=None, description="Write here instead of datasets/{name}."
    )

    @model_validator(mode="after")
    def _ranks_are_the_answers(self) -> LabelOptions:
        """A teacher ranking two candidates answers A or B (asked so unless a format says otherwise)."""
        if self.pairs.candidates is None:
            return self
        answer = self.answer
        if answer.regex is None and answer.json_schema is None and answer.choices is None:
            self.answer = AnswerFormat(choices=list(RANKS))
        elif self.target is None and sorted(answer.choices or []) != sorted(RANKS):
            raise ConfigError(
                "with --candidates the teacher's target says which answer is better: "
                + " or ".join(RANKS)
                + ".",
                "Drop the answer format (the choices are then A,B), or add --target mapping the answer to A "
                "or B.",
            )
        return self

    @model_validator(mode="after")
    def _student_view_is_whole(self) -> LabelOptions:
        if (self.image_preprocess is None) != (self.student is None):
            raise ConfigError(
                "--image-preprocess and --student go together: the teacher is shown each image as the "
                "student model sees it after that preprocessing.",
                "Give both (e.g. --image-preprocess llamacpp --student HuggingFaceTB/SmolVLM-256M-Instruct), "
                "or neither to send the image files as they are.",
            )
        if self.image_preprocess is not None and self.image_column is None:
            raise ConfigError(
                "--image-preprocess prepares the rows' images, and no --image-column names them.",
                "Add --image-column COLUMN (the column holding each row's image).",
            )
        return self

    def dataset_name(self, source: str) -> str:
        """``--name``, else the source dataset's name with ``-labelled``."""
        return self.name or f"{source}-labelled"
