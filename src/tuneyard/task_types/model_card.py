"""The model card (``README.md``) of every model folder tuneyard writes, and of a release.

A card is in the Hugging Face model-card format: YAML front matter with what the Hub
indexes (``base_model``, ``datasets``, ``license``, ``tags``, ``pipeline_tag``, the metrics
as ``model-index``), then what a person asks first: the numbers, where the model came
from, how it was trained, with which libraries, and how to load it. Written in place of
PEFT's template (all "[More Information Needed]") by the verbs that save a model
(``best/`` and ``last/``, merge, export, compress) and, with release notes and a
``release:`` reference, by ``tuneyard release``.

The loading snippet is read from the folder, not from a table: an adapter loads with
the ``AutoPeftModelFor...`` class of its PEFT task type, a plain model with the class
its ``config.json`` names, a GGUF file with llama.cpp, and a compressed model (low-rank
layers transformers does not know) with tuneyard alone. It lives with the task types
because the Hub's pipeline tag is the task type's (:attr:`TaskType.hub_task`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from tuneyard.errors import ConfigError
from tuneyard.models.compressed_folder import COMPRESSION_INFO_FILE
from tuneyard.models.loading import ADAPTER_CONFIG
from tuneyard.yard.index import flatten_metrics
from tuneyard.yard.lineage import LineageStep, lineage
from tuneyard.yard.summary import flatten_config

if TYPE_CHECKING:
    from tuneyard.yard.manifest import Manifest
    from tuneyard.yard.root import Yard

CARD_FILE = "README.md"
DEFAULT_LICENSE = "unknown"
# PEFT's task types whose base is a classifier with a head sized by its labels.
CLASSIFIER_TASK_TYPES = ("SEQ_CLS", "TOKEN_CLS")


def hub_task(task_type: str | None) -> str | None:
    """The Hub's pipeline tag of a recorded task type (each task type names its own), None if unknown."""
    from tuneyard.task_types import get_task_type

    if not task_type:
        return None
    try:
        return get_task_type(task_type).hub_task or None
    except ConfigError:
        return None


def write_model_card(yard: Yard, manifest: Manifest, folder: Path) -> None:
    """Write the card of the model artifact ``manifest`` describes into ``folder`` (its files written).

    ``folder`` may be the staging folder of the artifact; the card names its final path.
    Replaces a ``README.md`` already there (PEFT's template, a Trainer checkpoint's).
    """
    data = manifest.to_data()
    card = render_card(
        data,
        lineage(yard, data),
        title=f"# {manifest.name}\n\nA `{manifest.kind}` model filed by tuneyard at `{manifest.path}`.",
        loading=loading_section(folder, manifest.path),
        library_name="peft" if (folder / ADAPTER_CONFIG).is_file() else "transformers",
    )
    yard.storage.write_text(folder / CARD_FILE, card)


def render_card(
    manifest: dict[str, Any],
    chain: Sequence[LineageStep],
    *,
    title: str,
    loading: str,
    library_name: str,
    license_id: str = DEFAULT_LICENSE,
) -> str:
    """A card for the artifact ``manifest`` (as data) that descends through ``chain``.

    ``title`` opens the body (a heading and a paragraph); ``loading`` is the loading section's text.
    """
    sections = [
        title.rstrip(),
        "## Metrics\n\n" + _metrics_table(flatten_metrics(manifest.get("metrics") or {})),
        "## Lineage\n\nOldest first; each model was made from the one above it.\n\n" + _lineage(chain),
        "## Training config\n\nEvery setting the artifact was made with (unset ones left out).\n\n"
        + _pairs_table(_set(flatten_config(manifest.get("config") or {})), "setting"),
        "## Library versions\n\n" + _pairs_table(manifest.get("versions") or {}, "library"),
        "## Loading\n\n" + loading,
    ]
    metadata = front_matter(manifest, chain, license_id, library_name)
    return "---\n" + metadata + "---\n\n" + "\n\n".join(sections) + "\n"


def front_matter(
    manifest: dict[str, Any], chain: Sequence[LineageStep], license_id: str, library_name: str
) -> str:
    """The card's YAML metadata (what ``huggingface_hub.ModelCard`` parses as ``card.data``)."""
    task_type = manifest.get("task_type")
    data: dict[str, Any] = {
        "base_model": chain[0].path,
        "license": license_id,
        "library_name": library_name,
        "tags": [
            tag for tag in ("tuneyard", task_type, manifest.get("arch"), manifest.get("strategy")) if tag
        ],
    }
    if manifest.get("dataset"):
        data["datasets"] = [manifest["dataset"]]
    pipeline_tag = hub_task(task_type)
    if pipeline_tag:
        data["pipeline_tag"] = pipeline_tag
    metrics = flatten_metrics(manifest.get("metrics") or {})
    if metrics:
        data["model-index"] = [
            {
                "name": manifest["name"],
                "results": [
                    {
                        "task": {"type": pipeline_tag or task_type or "unknown"},
                        "dataset": {
                            "name": manifest.get("dataset") or "unknown",
                            "type": manifest.get("dataset") or "unknown",
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


IN_THE_YARD = "Run in the yard's folder (paths are relative to it)"


def loading_section(folder: Path, reference: str, where: str = IN_THE_YARD) -> str:
    """How to load the model in ``folder``, named ``reference`` (a path) in the snippets.

    First with the field's libraries alone where they can, then with tuneyard; ``where``
    says where the snippets run.
    """
    plain = _plain_snippet(folder, reference)
    with_tuneyard = (
        "```python\nimport tuneyard\n\n"
        f'model = tuneyard.load("{reference}")\nprint(type(model).__name__)\n```'
    )
    if plain is None:
        reason = "Its layers are low-rank factors transformers does not know, so it loads with tuneyard"
        return f"{reason}. {where}:\n\n{with_tuneyard}"
    libraries, code = plain
    section = f"{where}. With {libraries} alone:\n\n```python\n{code}```"
    if libraries == "llama.cpp":
        return section
    return f"{section}\n\nWith tuneyard:\n\n{with_tuneyard}"


def _plain_snippet(folder: Path, reference: str) -> tuple[str, str] | None:
    """``(libraries, code)`` loading ``folder`` without tuneyard; None when only tuneyard can."""
    if (folder / COMPRESSION_INFO_FILE).is_file():
        return None
    ggufs = sorted(path.name for path in folder.glob("*.gguf") if not path.name.startswith("mmproj"))
    if ggufs:
        return "llama.cpp", (
            "from llama_cpp import Llama\n\n"
            f'model = Llama(model_path="{reference}/{ggufs[0]}", verbose=False)\n'
            "print(type(model).__name__)\n"
        )
    if (folder / ADAPTER_CONFIG).is_file():
        return "transformers and PEFT", _adapter_snippet(folder, reference)
    model_class = _architecture(folder) or "AutoModel"
    return "transformers", (
        f"from transformers import {model_class}\n\n"
        f'model = {model_class}.from_pretrained("{reference}")\n'
        "print(type(model).__name__)\n"
    )


def _adapter_snippet(folder: Path, reference: str) -> str:
    """An adapter on its base: the ``AutoPeftModelFor...`` class of its PEFT task type.

    PEFT 0.21 builds the base from the base's own config and reads nothing else in the
    adapter folder, so no file there can size the head: a classifier's labels (saved
    beside the adapter in ``config.json``) are passed as arguments, which PEFT hands to
    the base's ``from_pretrained``. Without them the base gets a head of its default
    size and the saved head does not fit.
    """
    from peft.auto import MODEL_TYPE_TO_PEFT_MODEL_MAPPING

    adapter = json.loads((folder / ADAPTER_CONFIG).read_text())
    peft_class = MODEL_TYPE_TO_PEFT_MODEL_MAPPING.get(adapter.get("task_type") or "")
    if peft_class is None:
        base_class = _architecture(folder) or "AutoModel"
        return (
            f"from peft import PeftModel\nfrom transformers import {base_class}\n\n"
            f'base = {base_class}.from_pretrained("{adapter["base_model_name_or_path"]}")\n'
            f'model = PeftModel.from_pretrained(base, "{reference}")\n'
            "print(type(model).__name__)\n"
        )
    auto_class = f"Auto{peft_class.__name__}"
    if adapter["task_type"] not in CLASSIFIER_TASK_TYPES or not _labels(folder):
        return (
            f"from peft import {auto_class}\n\n"
            f'model = {auto_class}.from_pretrained("{reference}")\n'
            "print(type(model).__name__)\n"
        )
    return (
        f"from peft import {auto_class}\nfrom transformers import AutoConfig\n\n"
        "# The labels are saved beside the adapter, not in the base model's config; the base's\n"
        "# own head (if any) has another size, and the adapter's saved head replaces it.\n"
        f'labels = AutoConfig.from_pretrained("{reference}")\n'
        f"model = {auto_class}.from_pretrained(\n"
        f'    "{reference}",\n'
        "    num_labels=labels.num_labels,\n"
        "    id2label=labels.id2label,\n"
        "    label2id=labels.label2id,\n"
        "    ignore_mismatched_sizes=True,\n"
        ")\n"
        "print(type(model).__name__)\n"
    )


def _config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _architecture(folder: Path) -> str | None:
    """The model class ``config.json`` names, when transformers has it."""
    import transformers

    for name in _config(folder).get("architectures") or ():
        if hasattr(transformers, name):
            return str(name)
    return None


def _labels(folder: Path) -> bool:
    """Whether ``config.json`` names a classifier's labels."""
    return bool(_config(folder).get("id2label"))


def _set(settings: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in settings.items() if value is not None}


def _metrics_table(metrics: dict[str, float]) -> str:
    if not metrics:
        return "The artifact records no metrics."
    return _table(["metric", "value"], [[key, f"{value:.6g}"] for key, value in metrics.items()])


def _lineage(chain: Sequence[LineageStep]) -> str:
    rows = [
        [step.kind, f"`{step.path}`", step.id or "-", step.role or "(this model)", step.state]
        for step in chain
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
