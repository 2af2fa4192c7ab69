"""A release's model card: ``README.md`` in the Hugging Face model-card format.

The YAML front matter holds what the Hub indexes (``base_model``, ``datasets``,
``license``, ``tags``, ``pipeline_tag`` and the metrics as ``model-index``); the body
holds what a person asks first: the numbers, where the model came from, how it was
trained, with which libraries, and a loading snippet that runs as written (in the
yard's folder, or with ``TUNEYARD_HOME`` set to it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

from tuneyard.errors import ConfigError
from tuneyard.yard.index import flatten_metrics
from tuneyard.yard.lineage import LineageStep
from tuneyard.yard.summary import flatten_config


def hub_task(task_type: str | None) -> str | None:
    """The Hub's pipeline tag of a recorded task type (each task type names its own), None if unknown."""
    from tuneyard.task_types import get_task_type

    if not task_type:
        return None
    try:
        return get_task_type(task_type).hub_task or None
    except ConfigError:
        return None


def render_card(release: dict[str, Any], chain: Sequence[LineageStep], license_id: str) -> str:
    """The card of ``release`` (its manifest as data), whose artifact descends through ``chain``."""
    info = release["release"]
    reference = f"{info['name']}@{info['version']}"
    sections = [
        f"# {reference}\n\n{info['notes']}".rstrip(),
        "## Metrics\n\n" + _metrics_table(flatten_metrics(release.get("metrics") or {})),
        "## Lineage\n\nOldest first; each model was made from the one above it.\n\n" + _lineage(chain),
        "## Training config\n\nEvery setting the artifact was made with (unset ones left out).\n\n"
        + _pairs_table(_set(flatten_config(release.get("config") or {})), "setting"),
        "## Library versions\n\n" + _pairs_table(release.get("versions") or {}, "library"),
        "## Loading\n\n" + loading_snippet(reference),
    ]
    return "---\n" + front_matter(release, chain, license_id) + "---\n\n" + "\n\n".join(sections) + "\n"


def loading_snippet(reference: str) -> str:
    """A Python block that loads the release (run where the yard is, or with TUNEYARD_HOME)."""
    return (
        "Run in the yard's folder, or set `TUNEYARD_HOME` to it:\n\n"
        "```python\n"
        "import tuneyard\n\n"
        f'model = tuneyard.load("release:{reference}")\n'
        "print(type(model).__name__)\n"
        "```"
    )


def front_matter(release: dict[str, Any], chain: Sequence[LineageStep], license_id: str) -> str:
    """The card's YAML metadata (what ``huggingface_hub.ModelCard`` parses as ``card.data``)."""
    info = release["release"]
    task_type = release.get("task_type")
    data: dict[str, Any] = {
        "base_model": chain[0].path,
        "license": license_id,
        "library_name": "peft" if release.get("strategy") in ("lora", "qlora") else "transformers",
        "tags": [tag for tag in ("tuneyard", task_type, release.get("arch"), release.get("strategy")) if tag],
    }
    if release.get("dataset"):
        data["datasets"] = [release["dataset"]]
    pipeline_tag = hub_task(task_type)
    if pipeline_tag:
        data["pipeline_tag"] = pipeline_tag
    metrics = flatten_metrics(release.get("metrics") or {})
    if metrics:
        data["model-index"] = [
            {
                "name": f"{info['name']}@{info['version']}",
                "results": [
                    {
                        "task": {"type": pipeline_tag or task_type or "unknown"},
                        "dataset": {
                            "name": release.get("dataset") or "unknown",
                            "type": release.get("dataset") or "unknown",
                        },
                        "metrics": [
                            {"type": key.rsplit(".", 1)[-1], "name": key, "value": value}
                            for key, value in metrics.items()
                        ],
                    }
                ],
            }
        ]
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def _set(settings: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in settings.items() if value is not None}


def _metrics_table(metrics: dict[str, float]) -> str:
    if not metrics:
        return "The artifact records no metrics."
    return _table(["metric", "value"], [[key, f"{value:.6g}"] for key, value in metrics.items()])


def _lineage(chain: Sequence[LineageStep]) -> str:
    rows = [
        [step.kind, f"`{step.path}`", step.id or "-", step.role or "(released)", step.state] for step in chain
    ]
    return _table(["kind", "path", "id", "used as", "state"], rows)


def _pairs_table(pairs: dict[str, Any], heading: str) -> str:
    if not pairs:
        return "None recorded."
    return _table([heading, "value"], [[key, f"`{value}`"] for key, value in pairs.items()])


def _table(columns: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (``|`` inside a cell escaped)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)
