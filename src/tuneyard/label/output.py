"""The labelled rows filed as a ``dataset`` artifact, with the rows kept apart, the cost log and a card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.label.journal import JOURNAL_FILE
from tuneyard.label.options import LabelOptions
from tuneyard.label.pairs import as_pairs
from tuneyard.label.tally import LabelledDataset, Tally, price

if TYPE_CHECKING:
    from datasets import Dataset

    from tuneyard.yard.root import Yard

CARD_FILE = "README.md"
ANSWER_COLUMN = "teacher_answer"
CONFIDENCE_COLUMN = "confidence"


def write_dataset(
    options: LabelOptions,
    yard: Yard,
    source: Path,
    splits: dict[str, Dataset],
    entries: dict[tuple[str, int], dict[str, Any]],
    tally: Tally,
    dropped: list[str],
    job_dir: Path,
    unsent_pairs: int = 0,
) -> LabelledDataset:
    """Write ``datasets/{name}/`` from the journal's ``entries`` (written beside, then renamed).

    ``unsent_pairs``: rows left out of the pairs before the teacher was asked (two equal candidates).
    """
    from tuneyard.data.prepare import statistics, write_splits
    from tuneyard.yard.manifest import Manifest, Parent

    labelled = {
        split: labelled_rows(rows, split, entries, options.output_column) for split, rows in splits.items()
    }
    stats = outcome_metrics(entries, tally, options, labelled)
    if options.pairs.wanted:
        paired = {
            split: as_pairs(rows, options.pairs, options.output_column) for split, rows in labelled.items()
        }
        labelled = {split: rows for split, (rows, _) in paired.items()}
        stats["pairs_left_out"] = unsent_pairs + sum(left_out for _, left_out in paired.values())
    stats = statistics(labelled, options.output_column) | stats
    name = options.dataset_name(source.stem if source.is_file() else source.name)
    target = yard.target_path("dataset", output_dir=options.output_dir, name=name)
    manifest = Manifest(
        kind="dataset",
        name=target.name,
        dataset=name,
        parents=[yard.parent_link(source, "data"), Parent(path=options.teacher, role="teacher")],
        config=options.model_dump(mode="json") | {"dropped_request_options": dropped},
        metrics=stats,
    )
    with yard.create(manifest, target) as writer:
        manifest.metrics["content_hash"] = write_splits(labelled, writer.path)
        write_kept_apart(writer.path, entries)
        write_request_log(writer.path / "requests.jsonl", entries, options)
        (writer.path / JOURNAL_FILE).write_bytes((job_dir / JOURNAL_FILE).read_bytes())
        write_card(writer.path / CARD_FILE, name, source, options, manifest.metrics, dropped)
    return LabelledDataset(writer.final_path, writer.renamed, tally, dropped)


def labelled_rows(
    rows: Dataset, split: str, entries: dict[tuple[str, int], dict[str, Any]], column: str
) -> Dataset:
    """The split's labelled rows in their order, with the target, the raw answer and the confidence.

    A column already named like the target is kept as ``original_{column}``.
    """
    kept = sorted(
        index for (part, index), entry in entries.items() if part == split and entry["status"] == "labelled"
    )
    chosen = rows.select(kept)
    if column in chosen.column_names:
        chosen = chosen.rename_column(column, f"original_{column}")
    for name, key in ((column, "target"), (ANSWER_COLUMN, "answer"), (CONFIDENCE_COLUMN, "confidence")):
        chosen = chosen.add_column(name, [entries[(split, index)][key] for index in kept])
    return chosen


def outcome_metrics(
    entries: dict[tuple[str, int], dict[str, Any]],
    tally: Tally,
    options: LabelOptions,
    labelled: dict[str, Dataset],
) -> dict[str, Any]:
    """Row outcomes, tokens and cost (summed over the cost log), and agreement with an original label."""

    requests = [request for entry in entries.values() for request in entry["requests"]]
    prompt_tokens = sum(request["prompt_tokens"] for request in requests)
    completion_tokens = sum(request["completion_tokens"] for request in requests)
    metrics: dict[str, Any] = {
        "outcomes": {
            status: sum(entry["status"] == status for entry in entries.values())
            for status in ("labelled", "rejected", "failed")
        },
        "requests": len(requests),
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
    }
    cost = price(prompt_tokens, completion_tokens, options)
    if cost is not None:
        metrics["cost"] = cost
    agreement = original_agreement(labelled, options.output_column)
    if agreement is not None:
        metrics["agreement_with_original"] = agreement
    return metrics


def original_agreement(labelled: dict[str, Dataset], column: str) -> float | None:
    """The fraction of labelled rows whose target equals the row's original label (None: no original)."""
    from tuneyard.data.prepare import label_names

    original = f"original_{column}"
    pairs = [
        (str(name), target)
        for rows in labelled.values()
        if original in rows.column_names and len(rows)
        for name, target in zip(label_names(rows, original), rows[column], strict=True)
    ]
    return sum(name == target for name, target in pairs) / len(pairs) if pairs else None


def write_kept_apart(folder: Path, entries: dict[tuple[str, int], dict[str, Any]]) -> None:
    """``rejected.jsonl`` and ``failed.jsonl``: each row kept apart, with its reason (files only if any)."""
    for status in ("rejected", "failed"):
        lines = [
            json.dumps({key: entry.get(key) for key in ("split", "row", "reason", "answer", "confidence")})
            for entry in entries.values()
            if entry["status"] == status
        ]
        if lines:
            (folder / f"{status}.jsonl").write_text("\n".join(lines) + "\n")


def write_request_log(
    path: Path, entries: dict[tuple[str, int], dict[str, Any]], options: LabelOptions
) -> None:
    """The cost log: one line per HTTP request of the job, with its outcome, tokens and price."""

    lines = []
    for (split, index), entry in sorted(entries.items()):
        for number, request in enumerate(entry["requests"], start=1):
            cost = price(request["prompt_tokens"], request["completion_tokens"], options)
            line = {"split": split, "row": index, "request": number, **request}
            lines.append(json.dumps(line | ({"cost": cost} if cost is not None else {})))
    path.write_text("\n".join(lines) + ("\n" if lines else ""))


def write_card(
    path: Path, name: str, source: Path, options: LabelOptions, metrics: dict[str, Any], dropped: list[str]
) -> None:
    """The dataset card: which rows, which teacher, which prompt, and what came of it."""
    outcomes = metrics["outcomes"]
    lines = [
        f"# {name}",
        "",
        f"- labelled from: `{source}`",
        f"- teacher: `{options.teacher}` at `{options.base_url}` (temperature {options.temperature:g})",
        f"- answer format: {describe_answer(options)}",
        f"- rows: {outcomes['labelled']} labelled, {outcomes['rejected']} rejected "
        f"(rejected.jsonl), {outcomes['failed']} failed (failed.jsonl)",
        f"- requests: {metrics['requests']}, tokens: {metrics['prompt_tokens']} prompt + "
        f"{metrics['completion_tokens']} completion"
        + (f", cost {metrics['cost']:.4f}" if "cost" in metrics else ""),
        f"- content hash (sha256 of the Parquet files): `{metrics['content_hash']}`",
    ]
    if "agreement_with_original" in metrics:
        agreement = metrics["agreement_with_original"]
        lines.append(f"- agreement with the rows' original `{options.output_column}`: {agreement:.3f}")
    if "pairs_left_out" in metrics:
        lines.append(
            f"- preference pairs ({describe_pairs(options)}); {metrics['pairs_left_out']} left out, "
            "their two answers the same"
        )
    if dropped:
        lines.append(f"- request options the server refused: {refused_options(dropped)}")
    lines += ["", "## Prompt", ""]
    if options.system_prompt:
        lines += ["System:", "", "```", options.system_prompt, "```", ""]
    lines += ["User (Jinja over the row's columns):", "", "```", options.prompt, "```", ""]
    lines += ["| split | rows |", "|---|---:|"] + [
        f"| {split} | {n} |" for split, n in metrics["rows"].items()
    ]
    path.write_text("\n".join(lines) + "\n")


def refused_options(dropped: list[str]) -> str:
    """What the job asked without (or, after an arrow, in which simpler form), in words."""
    return "; ".join(entry if "->" in entry else f"{entry} (asked without)" for entry in dropped)


def describe_pairs(options: LabelOptions) -> str:
    pairs = options.pairs
    if pairs.candidates is not None:
        first, second = pairs.candidates
        return f"the teacher ranked `{first}` (A) against `{second}` (B) for `{pairs.prompt_column}`"
    return (
        f"the teacher wrote the chosen answer to `{pairs.prompt_column}`, `{pairs.rejected_column}` rejected"
    )


def describe_answer(options: LabelOptions) -> str:
    answer = options.answer
    if answer.choices:
        return "one of " + ", ".join(f"`{choice}`" for choice in answer.choices)
    if answer.regex:
        return f"matches `{answer.regex}`"
    if answer.json_schema:
        return "JSON under the schema in the manifest's config"
    return "any text"
