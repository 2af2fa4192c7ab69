"""Command-line options generated from a verb's pydantic options model: declared once, there.

Each field of the model becomes one flag: ``batch_size`` -> ``--batch-size``, a nested
model's fields are prefixed (``lora.r`` -> ``--lora-r``) and grouped in their own
``--help`` panel; the type, the default shown and the help text (``Field(description=
...)``) are the model's. ``Literal`` fields offer their values as choices, ``bool``
fields are ``--x/--no-x`` (a field named ``no_x`` is the flag ``--no-x``), lists take
one comma-separated value (or a repeated flag), ``dict`` fields are left to ``--config``
and ``--set``. Where a field needs more, it says so with a :class:`tuneyard.config.Cli`
marker in the model (another flag name, hidden old spellings, a panel ...).

:func:`with_model_options` gives a typer command those flags (the same mechanism as
``runs ls``'s filter flags) and hands the command only the flags the user gave, as
nested field values for :func:`tuneyard.config.resolve_options`, so a config file's
value is never replaced by a flag's default.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import types
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

import typer
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from tuneyard.cli.console import note
from tuneyard.config import Cli, flag_for

NO_MARKER = Cli()
# Where a value counts as given by the user (typer's click reports a ParameterSource).
GIVEN = ("COMMANDLINE", "ENVIRONMENT")


@dataclass(frozen=True)
class FieldFlag:
    """One options field offered as a flag (and, maybe, under old spellings)."""

    path: tuple[str, ...]  # where the value goes: ("lora", "r")
    flag: str  # "--lora-r"
    field: FieldInfo
    marker: Cli
    panel: str | None
    default: Any  # the model's default here (a nested model's default may differ from its class's)
    group: str = "flags"  # the command argument the value goes to (a verb may take two models)

    @property
    def param(self) -> str:
        """The command parameter's name (unique, and clear of the command's own parameters)."""
        return f"{self.group}__" + "__".join(self.path)

    def alias_param(self, number: int) -> str:
        return f"{self.param}__alias{number}"

    @property
    def file_param(self) -> str:
        return f"{self.param}__file"

    @property
    def kind(self) -> Any:
        """The field's type without ``None``: what a given value must be."""
        return value_type(self.field.annotation)

    def is_list(self) -> bool:
        return get_origin(self.kind) in (list, tuple, set)

    def is_bool(self) -> bool:
        return self.kind is bool


def value_type(annotation: Any) -> Any:
    """``X | None`` -> ``X``, ``PositiveInt`` -> ``int``; a union of several types stays a union."""
    if get_origin(annotation) is Annotated:
        return value_type(get_args(annotation)[0])
    if get_origin(annotation) in (Union, types.UnionType):
        kept = [arg for arg in get_args(annotation) if arg is not type(None)]
        kept = [value_type(arg) for arg in kept]
        return kept[0] if len(kept) == 1 else Union[tuple(kept)]  # noqa: UP007 (built from a list)
    return annotation


def marker_of(field: FieldInfo) -> Cli:
    """The field's :class:`Cli` marker, or the default rules."""
    return next((item for item in field.metadata if isinstance(item, Cli)), NO_MARKER)


def nested_model(field: FieldInfo) -> type[BaseModel] | None:
    """The options model a field holds (``lora: LoraOptions``), else None."""
    kind = value_type(field.annotation)
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def field_flags(
    model: type[BaseModel], exclude: Collection[str] = (), group: str = "flags"
) -> Iterator[FieldFlag]:
    """Every flag ``model`` offers (but ``exclude``), in field order, nested models' after their parent's."""
    return nested_flags(model, model, exclude, group)


def nested_flags(
    root: type[BaseModel],
    model: type[BaseModel],
    exclude: Collection[str],
    group: str,
    path: tuple[str, ...] = (),
    panel: str | None = None,
    defaults: BaseModel | None = None,
) -> Iterator[FieldFlag]:
    """The flags of ``model``, found at ``path`` in ``root``.

    ``defaults``: the parent's default for this nested model, whose values win over the
    class's own (``answers`` of ``validate`` defaults to 32 new tokens, not 64).
    """
    nested: list[tuple[str, FieldInfo, type[BaseModel], str | None]] = []
    for name, field in model.model_fields.items():
        marker = marker_of(field)
        if name in exclude or marker.hidden:
            continue
        inner = nested_model(field)
        if inner is not None:
            nested.append((name, field, inner, None))
        elif marker.models_from:  # a mapping whose keys are the fields of these models, by panel
            models = load_reference(marker.models_from)().items()
            nested.extend((name, field, model_of_panel, panel) for panel, model_of_panel in models)
        elif not is_mapping(field) or marker.file_flag or marker.repeat:  # else: --config and --set only
            flag = flag_for(root, (*path, name))
            default = field_default(field, name, defaults)
            yield FieldFlag((*path, name), flag, field, marker, marker.panel or panel, default, group)
    for name, field, inner, panel_of_model in nested:
        marker = marker_of(field)
        title = panel_of_model or marker.panel or field.title or name.replace("_", " ").capitalize()
        inner_defaults = None if marker.models_from else field_default(field, name, defaults)
        yield from nested_flags(root, inner, (), group, (*path, name), title, inner_defaults)


def field_default(field: FieldInfo, name: str, defaults: BaseModel | None) -> Any:
    """The default of one field: the parent's default model's value, else the field's (None: required)."""
    if defaults is not None:
        return getattr(defaults, name)
    if field.is_required():
        return None
    return field.get_default(call_default_factory=True)


def is_mapping(field: FieldInfo) -> bool:
    """A ``dict`` field: given in ``--config``, with ``--set`` or as a file (``Cli(file_flag=...)``)."""
    kind = value_type(field.annotation)
    return kind is dict or get_origin(kind) is dict


def load_reference(reference: str) -> Any:
    """``"package.module:NAME"`` -> that object (imported only when help or a value needs it)."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def help_text(option: FieldFlag) -> str:
    """The field's description, with the choices or default its marker points at."""
    text = option.field.description or ""
    if option.marker.choices_from:
        table = load_reference(option.marker.choices_from)
        text += f" One of: {', '.join(table() if callable(table) else table)}."
    if option.marker.default_from:
        text += f" Default: {load_reference(option.marker.default_from)()}."
    if option.is_list() and not option.marker.repeat:
        text += " Comma-separated."
    if option.field.is_required():
        text += " Required (here or in --config)."
    return text.strip()


def shown_default(option: FieldFlag) -> Any:
    """The model's default as the command line would spell it (None: none to show)."""
    default = option.default
    if is_mapping(option.field):
        return None
    if option.is_list():
        return ",".join(map(str, default)) if default and not option.marker.repeat else None
    return default


def parameter_type(option: FieldFlag) -> Any:
    """The Python type typer parses a flag's value as (a ``Literal``'s values become choices)."""
    kind = option.kind
    if option.is_list() or is_mapping(option.field):
        return list[str] if option.marker.repeat else str
    if option.marker.path:
        return Path
    if kind in (bool, int, float, str) or get_origin(kind) is Literal:
        return kind
    return str  # unions (a rank: 64 or attn=40,ffn=240): pydantic reads the text


def flag_declarations(option: FieldFlag) -> list[str]:
    """``--x/--no-x`` for a bool field, ``--no-x`` alone for one named ``no_x``, else the flag."""
    if option.is_bool() and not option.path[-1].startswith("no_"):
        negative = "--no-" + option.flag.removeprefix("--")
        return [f"{option.flag}/{negative}"]
    return [option.flag]


def parameters(option: FieldFlag) -> list[inspect.Parameter]:
    """The flag's command parameter, one hidden parameter per old spelling, and its file flag."""
    file_flag = [file_parameter(option)] if option.marker.file_flag else []
    if is_mapping(option.field) and not option.marker.repeat:  # a mapping (a JSON schema): a file only
        return file_flag
    return [main_parameter(option), *alias_parameters(option), *file_flag]


def main_parameter(option: FieldFlag) -> inspect.Parameter:
    """The flag itself, its default the model's (shown by --help; a value left at it is not passed on)."""
    python_type = parameter_type(option)
    return inspect.Parameter(
        option.param,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        default=bool(option.default) if option.is_bool() else shown_default(option),
        annotation=Annotated[
            python_type if option.is_bool() else python_type | None,
            typer.Option(*flag_declarations(option), help=help_text(option), rich_help_panel=option.panel),
        ],
    )


def alias_parameters(option: FieldFlag) -> list[inspect.Parameter]:
    """One hidden flag per old spelling, with no default of its own."""
    python_type = parameter_type(option)
    return [
        inspect.Parameter(
            option.alias_param(number),
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
            default=None,
            annotation=Annotated[python_type | None, typer.Option(alias, hidden=True)],
        )
        for number, alias in enumerate(option.marker.aliases)
    ]


def file_parameter(option: FieldFlag) -> inspect.Parameter:
    """``--prompt-file PATH``: the field's value read from a file (see :func:`read_value_file`)."""
    if is_mapping(option.field):
        file_help = f"{option.field.description or ''} A JSON or YAML file.".strip()
    else:
        file_help = f"Or: read {option.flag} from a file."
    return inspect.Parameter(
        option.file_param,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        default=None,
        annotation=Annotated[
            Path | None,
            typer.Option(str(option.marker.file_flag), help=file_help, rich_help_panel=option.panel),
        ],
    )


def flag_value(option: FieldFlag, value: Any) -> Any:
    """A given flag's value as the field expects it (a comma-separated list split, a path as text)."""
    if is_mapping(option.field):
        return pairs(option.flag, value)
    if option.is_list() and not option.marker.repeat:
        return [part.strip() for part in str(value).split(",") if part.strip()]
    if option.is_list():
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return value


def pairs(flag: str, given: list[str]) -> dict[str, str]:
    """A repeated ``--rename old=new`` as a mapping; anything else is a user error."""
    from tuneyard.errors import ConfigError

    mapping = {}
    for pair in given:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise ConfigError(f"{flag} {pair!r} is not old=new.", f"Example: {flag} sentence=text")
        mapping[old.strip()] = new.strip()
    return mapping


def given(ctx: typer.Context, param: str) -> bool:
    """Whether the user set ``param`` (on the command line or through its environment variable)."""
    source = ctx.get_parameter_source(param)
    return source is not None and source.name in GIVEN


def read_value_file(option: FieldFlag, path: Path) -> Any:
    """The value a file flag names: the file's text, or for a mapping field its JSON (or YAML) content."""
    from tuneyard.config import read_config_file
    from tuneyard.errors import ConfigError

    flag = option.marker.file_flag
    if not path.is_file():
        raise ConfigError(f"{flag} {path} does not exist.")
    if not is_mapping(option.field):
        return path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{flag} {path} is not JSON: {exc}.") from None
    return read_config_file(path)


def given_value(ctx: typer.Context, option: FieldFlag, values: dict[str, Any]) -> tuple[bool, Any]:
    """Whether the user gave this field's flag (or an old spelling, or its file flag), and the field's value.

    An old spelling prints one line naming the new one.
    """
    if option.marker.file_flag and given(ctx, option.file_param):
        return True, read_value_file(option, values[option.file_param])
    if given(ctx, option.param):
        return True, flag_value(option, values[option.param])
    for number, alias in enumerate(option.marker.aliases):
        if given(ctx, option.alias_param(number)):
            note(f"note: {alias} is now spelled {option.flag}; the old spelling still works.")
            return True, flag_value(option, values[option.alias_param(number)])
    return False, None


def collect(ctx: typer.Context, options: list[FieldFlag], values: dict[str, Any]) -> dict[str, Any]:
    """The flags the user gave, as nested field values (``{"lora": {"r": 16}}``)."""
    flags: dict[str, Any] = {}
    for option in options:
        was_given, value = given_value(ctx, option, values)
        if not was_given:
            continue
        target = flags
        for part in option.path[:-1]:
            target = target.setdefault(part, {})
        target[option.path[-1]] = value
    return flags


def with_model_options(
    model: type[BaseModel], exclude: Collection[str] = (), into: str = "flags"
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Give a command one flag per field of ``model`` (but ``exclude``); it receives them as ``into``.

    ``into`` (``flags``) holds only the flags given, as nested field values: pass it to
    :func:`tuneyard.config.resolve_options` with ``--config`` and ``--set``. The command
    must take ``ctx: typer.Context`` (where the flags' sources are read). A verb with two
    models (``export``: the export's, the validation's) is decorated once per model.
    """
    options = list(field_flags(model, exclude, into))

    def decorate(command: Callable[..., None]) -> Callable[..., None]:
        signature = inspect.signature(command, eval_str=True)
        own = list(signature.parameters.values())
        at = [parameter.name for parameter in own].index(into)
        generated = [parameter for option in options for parameter in parameters(option)]
        names = {parameter.name for parameter in generated}

        @functools.wraps(command)
        def with_flags(*args: Any, **kwargs: Any) -> None:
            values = {name: kwargs.pop(name) for name in list(kwargs) if name in names}
            command(*args, **{into: collect(kwargs["ctx"], options, values)}, **kwargs)

        # The model's flags take the place of ``into``, so --help lists them before the verb's own.
        with_flags.__signature__ = signature.replace(parameters=[*own[:at], *generated, *own[at + 1 :]])  # type: ignore[attr-defined]
        return with_flags

    return decorate
