"""Options for every verb as pydantic models: YAML file, CLI flags and ``--set`` merged.

Precedence, lowest to highest: the model's defaults, ``--config FILE``, explicit CLI
flags, ``--set a.b=value``. Errors name the field, the bad value and what is allowed.

The models are also the command line's only source: :mod:`tuneyard.cli.options_cli`
makes one flag per field (name, type, default, help from ``Field(description=...)``).
A field whose flag needs more than those rules carries a :class:`Cli` marker:
``checkpoint: Annotated[str, Cli(aliases=("--model",))]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, get_args

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from tuneyard.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class Cli:
    """How one options field is offered on the command line, where the default rules do not fit.

    Kept here, beside :class:`StrictModel`, so option models can say it without importing
    the CLI; read by :mod:`tuneyard.cli.options_cli` and :func:`flag_for`.
    """

    flag: str | None = None  # the flag instead of --field-name (compress's `model`: --checkpoint)
    aliases: tuple[str, ...] = ()  # old spellings: hidden, still accepted, with a note naming `flag`
    panel: str | None = None  # the --help panel of the flag (a nested model's: its fields' panel)
    hidden: bool = False  # no flag: the config file and --set only
    flatten: bool = False  # a nested model whose flags keep their own names (--grader, not --answers-grader)
    repeat: bool = False  # a list given by repeating the flag (default: comma-separated); a mapping: old=new
    path: bool = False  # a file or folder (shown as PATH)
    file_flag: str | None = None  # also --x-file PATH: the file's text (a mapping: its JSON/YAML)
    # "module:NAME": a table whose keys --help lists, or a function returning them (not enforced)
    choices_from: str | None = None
    default_from: str | None = None  # "module:function": the text of a default that depends on others
    # "module:function" -> {panel title: options model}: a mapping field whose keys are those
    # models' fields, each offered as a flag in its panel (the task types' own options)
    models_from: str | None = None


class StrictModel(BaseModel):
    """Base for option models: unknown fields are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())


def read_config_file(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a mapping, with a clear error when it is not one."""
    config_file = Path(path)
    if not config_file.is_file():
        raise ConfigError(f"config file {config_file} does not exist.")
    try:
        data = yaml.safe_load(config_file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{config_file} is not valid YAML: {exc}.") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{config_file} must hold a mapping of option names to values.")
    return data


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one ``a.b=value`` override in place; the value is parsed as YAML."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {assignment!r} is not of the form field=value.", "Example: --set lora.r=16")
    parts = key.strip().split(".")
    target = data
    for part in parts[:-1]:
        child = target.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {assignment!r}: {part!r} is a value, not a group of fields.")
        target = child
    try:
        target[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        target[parts[-1]] = raw


def deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` updated with ``extra``, merging nested mappings."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def format_validation_error(model: type[BaseModel], error: ValidationError) -> ConfigError:
    """Turn pydantic's report into one tuneyard message naming field, value and rule."""
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "(config)"
        value = item.get("input")
        if item["type"] == "extra_forbidden":
            allowed = ", ".join(sorted(_model_at(model, item["loc"][:-1]).model_fields))
            lines.append(f"unknown field {field!r}. Allowed fields: {allowed}.")
        elif item["type"] == "missing":
            flag = flag_for(model, item["loc"])
            lines.append(f"field {field!r} is required: give {flag} or set {field}: in --config.")
        else:
            lines.append(f"field {field!r} = {value!r}: {item['msg']}.")
    return ConfigError("invalid options: " + lines[0], "\n".join(lines[1:]) or None)


def flag_for(model: type[BaseModel], location: Sequence[Any]) -> str:
    """The command-line flag of the field at ``location`` (``("lora", "r")`` -> ``--lora-r``).

    The one naming rule: the field's name with dashes, after its nested models' names
    (unless a model is ``Cli(flatten=True)``), or the ``Cli(flag=...)`` it declares.
    """
    prefix = ""
    for number, part in enumerate(location):
        field = model.model_fields.get(str(part))
        marker = next((item for item in field.metadata if isinstance(item, Cli)), Cli()) if field else Cli()
        if number == len(location) - 1 or field is None:
            return marker.flag or "--" + (prefix + str(part)).replace("_", "-")
        if not marker.flatten:
            prefix += f"{part}_"
        model = _model_at(model, (part,))
    return "--" + prefix.rstrip("_").replace("_", "-")


def _model_at(model: type[BaseModel], location: tuple[Any, ...]) -> type[BaseModel]:
    """The nested model a field path leads to (``finetuning`` -> the grid's model), else ``model``."""
    for part in location:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        candidates = [annotation, *get_args(annotation)]  # an optional block: X | None
        nested = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        if not nested:
            return model
        model = nested[0]
    return model


def resolve_options(
    model: type[ModelT],
    flags: Mapping[str, Any] | None = None,
    config_file: str | Path | None = None,
    overrides: Sequence[str] = (),
) -> ModelT:
    """Build validated options from defaults, a config file, CLI flags and ``--set``.

    ``flags`` holds only options the user gave explicitly (None values are dropped),
    so a config file's value is not replaced by a flag's default.
    """
    data: dict[str, Any] = read_config_file(config_file) if config_file else {}
    data = deep_merge(data, {key: value for key, value in (flags or {}).items() if value is not None})
    for assignment in overrides:
        apply_override(data, assignment)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise format_validation_error(model, exc) from exc
