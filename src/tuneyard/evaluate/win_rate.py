"""A judged win rate: how often a judge prefers one model's answers (the tuned) over another's (the start).

The answers are two evals' ``predictions.jsonl`` on the same prompts (``tuneyard eval`` of
each model on the same split). Every prompt whose two answers differ is put to the judge
twice, once in each order (a judge that favours the first answer it reads cancels out),
as a ``label`` job that ranks two candidates (:mod:`tuneyard.label.pairs`): the same
client, retries, journal, cost log (``requests.jsonl``) and card, filed as a dataset of
judgements. A prompt whose answers are the same is a tie without asking. The result,
``win_rate.json`` with the judge prompt it was asked with, goes beside the candidate's
eval files (``win_rates/{judgements}.json``, beside the rows put to the judge, named by their
content):

    win_rate = (wins + ties / 2) / (wins + ties + losses)

counted over judgements (two per prompt, two ties for same answers); a judgement the
judge never gave validly (rejected or failed rows of the job) is counted apart.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import Field

from tuneyard.config import Cli
from tuneyard.errors import DataError
from tuneyard.evaluate.placement import key_part, owning_artifact, subfolder_prefix
from tuneyard.label.options import LabelOptions, PairOptions, TeacherOptions

if TYPE_CHECKING:
    from tuneyard.label.tally import Tally
    from tuneyard.yard.root import Yard

PREDICTIONS_FILE = "predictions.jsonl"
EVAL_RECORD = "metrics.json"  # what an eval recorded beside its answers: the model, task, split, scores
WIN_RATES_DIR = "win_rates"
JUDGE_PROMPT = """Which answer to the request below is better: more correct, and closer to what was asked?

Request:
{{ prompt }}

Answer A:
{{ first }}

Answer B:
{{ second }}

Reply with the letter of the better answer only: A or B."""
# Which model's answer a judgement row shows first.
CANDIDATE_FIRST, BASELINE_FIRST = "candidate", "baseline"


class WinRateOptions(TeacherOptions):
    """Two evals' answers to the same prompts, and the judge that compares them."""

    candidate: Annotated[str, Cli(path=True)] = Field(
        description="The tuned model's eval folder (holding predictions.jsonl)."
    )
    baseline: Annotated[str, Cli(path=True)] = Field(
        description="The eval folder of the model it is compared with (e.g. the start), on the same split."
    )
    prompt: Annotated[str | None, Cli(file_flag="--prompt-file")] = Field(
        default=None,
        description="The judge's Jinja template over {{ prompt }}, {{ first }} and {{ second }}; it must ask "
        "for A or B (default: which answer is more correct and closer to what was asked, A or B).",
    )
    system_prompt: Annotated[str | None, Cli(flag="--system", file_flag="--system-file")] = Field(
        default=None, description="The judge's system prompt."
    )
    max_tokens: int = Field(default=4, gt=0, description="Longest verdict, in tokens.")
    name: str | None = Field(
        default=None,
        description="The judgements dataset's name (default: CANDIDATE_MODEL-vs-BASELINE_MODEL-TASK_SPLIT, "
        "the models each eval recorded).",
    )


@dataclass
class WinRate:
    """What the judge decided, counted over judgements."""

    win_rate: float
    wins: int
    losses: int
    ties: int
    unjudged: int
    prompts: int
    judge: str
    judge_prompt: str | None
    system_prompt: str | None
    judgements: str  # the dataset of judgements (the label job's folder)


def read_predictions(folder: Path) -> dict[str, dict[str, Any]]:
    """An eval folder's answers by row id."""
    path = folder / PREDICTIONS_FILE
    if not path.is_file():
        raise DataError(
            f"{folder} has no {PREDICTIONS_FILE}: a win rate compares two models' generated answers.",
            "Pass the folder `tuneyard eval` filed for a chat or preference model (it prints it).",
        )
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {str(row["id"]): row for row in rows}


def judgement_rows(candidate: dict[str, dict], baseline: dict[str, dict]) -> tuple[list[dict], int]:
    """The rows to judge (each differing prompt in both orders) and the number of prompts with the same
    answer; refuses two evals of different prompts."""
    if set(candidate) != set(baseline) or any(
        candidate[key]["prompt"] != baseline[key]["prompt"] for key in candidate
    ):
        raise DataError(
            "the two evals did not answer the same prompts (their row ids or prompts differ).",
            "Evaluate both models on the same data, split and --nb-eval-samples.",
        )
    rows, same = [], 0
    for key, ours in candidate.items():
        theirs = baseline[key]["prediction"]
        if ours["prediction"].strip() == theirs.strip():
            same += 1
            continue
        for order, first, second in (
            (CANDIDATE_FIRST, ours["prediction"], theirs),
            (BASELINE_FIRST, theirs, ours["prediction"]),
        ):
            rows.append(
                {"id": key, "order": order, "prompt": judged_prompt(ours), "first": first, "second": second}
            )
    return rows, same


def judged_prompt(prediction: dict[str, Any]) -> str:
    """What the judge reads as the request: the prompt without the chat template's tokens.

    ``request`` is the prompt's messages as plain text (evals since it was recorded); an
    older ``predictions.jsonl`` has only the rendered ``prompt``, which is given as it is.
    """
    return str(prediction.get("request") or prediction["prompt"])


def judge_win_rate(
    options: WinRateOptions, yard: Yard, on_row: Callable[[Tally], None] | None = None
) -> WinRate:
    """Ask the judge (see the module) and file the win rate beside the candidate's eval files."""
    from tuneyard.label.labeller import label_dataset

    options = options.model_copy(update={"prompt": options.prompt or JUDGE_PROMPT})
    candidate, baseline = Path(options.candidate), Path(options.baseline)
    rows, same = judgement_rows(read_predictions(candidate), read_predictions(baseline))
    if not rows:
        raise DataError(
            f"the two evals gave the same answer to every one of their {same} prompts: nothing to judge.",
            "Compare models whose answers differ (the tuned model against its start).",
        )
    name = options.name or comparison_name(candidate, baseline, yard)
    text = "".join(json.dumps(row) + "\n" for row in rows)
    # Named by its content: the same comparison again resumes the same job, another never replaces it.
    source = candidate / WIN_RATES_DIR / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:8]}.rows.jsonl"
    source.parent.mkdir(exist_ok=True)
    yard.storage.write_text(source, text)
    job = LabelOptions(
        **options.model_dump(include=set(TeacherOptions.model_fields)),
        data=str(source), prompt=options.prompt, system_prompt=options.system_prompt, name=name,
        output_column="verdict", logprobs=False,
        pairs=PairOptions(prompt_column="prompt", candidates=["first", "second"]),
    )  # fmt: skip
    filed = label_dataset(job, yard, on_row=on_row)
    result = count_judgements(filed.path, same, len(rows) // 2 + same, options)
    yard.storage.write_text(
        candidate / WIN_RATES_DIR / f"{filed.path.name}.json", json.dumps(asdict(result), indent=2) + "\n"
    )
    return result


def comparison_name(candidate: Path, baseline: Path, yard: Yard) -> str:
    """The judgements' default name: which models were compared, and on what (``run-vs-start-task_split``).

    Two evals of the same split share their folder's name (``{task}_{split}``), so that name alone
    says nothing of the models and a second comparison on the split would take the first one's name.
    """
    recorded = read_eval_record(candidate)
    on = f"-{key_part(recorded['task'])}_{key_part(recorded['split'])}" if "task" in recorded else ""
    return f"{model_label(candidate, yard)}-vs-{model_label(baseline, yard)}{on}"


def read_eval_record(folder: Path) -> dict[str, Any]:
    """The eval's ``metrics.json`` (the model, task and split it recorded), or {} where there is none."""
    path = folder / EVAL_RECORD
    return dict(json.loads(path.read_text())) if path.is_file() else {}


def model_label(eval_folder: Path, yard: Yard) -> str:
    """The model an eval answered with, as the eval named its results: its artifact's name in the yard
    (``last_RUN`` for a run's ``last/``), else its folder's; the eval folder's name if it recorded none."""
    model = read_eval_record(eval_folder).get("model")
    if not model:
        return eval_folder.name
    folder = Path(model) if Path(model).is_absolute() else yard.root / model
    artifact = owning_artifact(folder, yard)
    if artifact is None:
        return key_part(folder.name)
    return subfolder_prefix(folder, artifact) + key_part(artifact.name)


def count_judgements(folder: Path, same: int, prompts: int, options: WinRateOptions) -> WinRate:
    """Wins, losses and ties from the filed judgements (the chosen answer is the one the judge preferred)."""
    from datasets import Dataset

    judged = Dataset.from_parquet(str(folder / "train.parquet"))  # a rows file is read as train
    wins = losses = 0
    for row in judged:
        candidate_answer = row["first"] if row["order"] == CANDIDATE_FIRST else row["second"]
        if row["chosen"] == candidate_answer:
            wins += 1
        else:
            losses += 1
    asked = 2 * (prompts - same)
    ties = 2 * same
    return WinRate(
        win_rate=(wins + ties / 2) / (wins + ties + losses), wins=wins, losses=losses, ties=ties,
        unjudged=asked - len(judged), prompts=prompts, judge=options.teacher, judge_prompt=options.prompt,
        system_prompt=options.system_prompt, judgements=str(folder),
    )  # fmt: skip
