"""Options declared once: every field of a verb's options model is a flag of that verb, default shown.

The expected flags are worked out here from the models alone (field names, nesting and
their ``Cli`` markers), not from the generator, so a field the generator drops, misnames
or shows without its default fails here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from tuneyard.compress.options import CompressOptions
from tuneyard.config import Cli
from tuneyard.data.prepare import PrepareOptions
from tuneyard.evaluate.grade_file import GradeOptions
from tuneyard.evaluate.options import EvalOptions, GenerateOptions, GridOptions
from tuneyard.evaluate.win_rate import WinRateOptions
from tuneyard.experiments.options import GridRunOptions
from tuneyard.export.agreement import ValidateOptions
from tuneyard.export.exporter import ExportOptions
from tuneyard.export.merge import MergeOptions
from tuneyard.label.options import LabelOptions
from tuneyard.report.options import ReportOptions
from tuneyard.train.options import FinetuneOptions

# verb -> its options models, each with the fields it takes another way (eval-grid: --models A B C).
VERBS: dict[str, list[tuple[type[BaseModel], tuple[str, ...]]]] = {
    "finetune": [(FinetuneOptions, ())],
    "compress": [(CompressOptions, ())],
    "eval": [(EvalOptions, ())],
    "generate": [(GenerateOptions, ())],
    "win-rate": [(WinRateOptions, ())],
    "eval-grid": [(GridOptions, ("models", "tasks"))],
    "merge": [(MergeOptions, ())],
    "export": [(ExportOptions, ()), (ValidateOptions, ())],
    "validate": [(ValidateOptions, ())],
    "label": [(LabelOptions, ())],
    "prepare": [(PrepareOptions, ("source",))],  # source: the SOURCE argument
    "grade": [(GradeOptions, ())],
    "report": [(ReportOptions, ())],
    "grid": [(GridRunOptions, ())],
}


def marker(field: FieldInfo) -> Cli:
    return next((item for item in field.metadata if isinstance(item, Cli)), Cli())


def inner_model(field: FieldInfo) -> type[BaseModel] | None:
    for kind in (field.annotation, *get_args(field.annotation)):
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            return kind
    return None


def expected_flags(
    model: type[BaseModel], skip: tuple[str, ...] = (), prefix: str = "", defaults: Any = None
) -> Iterator[Any]:
    """``(flag, field, shown default or None)`` for every field the verb must offer."""
    for name, field in model.model_fields.items():
        cli = marker(field)
        kinds = (field.annotation, *get_args(field.annotation))
        if name in skip or cli.hidden:
            continue
        if any(kind is dict or get_origin(kind) is dict for kind in kinds):  # a mapping: a file flag, or none
            if cli.file_flag:
                yield cli.file_flag, name, None
            elif cli.repeat:  # --rename old=new, repeated
                yield cli.flag or f"--{prefix}{name}".replace("_", "-"), name, None
            continue
        if defaults is not None:  # a nested model's default set by its parent (validate: 32 new tokens)
            default = getattr(defaults, name)
        else:
            default = None if field.is_required() else field.get_default(call_default_factory=True)
        nested = inner_model(field)
        if nested is not None:
            yield from expected_flags(nested, (), prefix if cli.flatten else f"{prefix}{name}-", default)
            continue
        flag = cli.flag or f"--{prefix}{name}".replace("_", "-")
        if isinstance(default, bool):
            shown = None if name.startswith("no_") else (flag[2:] if default else f"no-{flag[2:]}")
        elif isinstance(default, list):
            shown = ",".join(default) if default and not cli.repeat else None
        else:
            shown = default
        yield flag, name, shown


@pytest.fixture
def wide_help(tuneyard: Callable[..., Any], monkeypatch: pytest.MonkeyPatch) -> Callable[[str], str]:
    """A verb's --help, one option per line (wide enough that nothing wraps)."""
    monkeypatch.setenv("COLUMNS", "400")

    def render(verb: str) -> str:
        result = tuneyard(verb, "--help")
        assert result.code == 0, result.err
        return result.out

    return render


@pytest.mark.parametrize("verb", VERBS)
def test_every_field_is_offered_with_its_default(wide_help: Callable[[str], str], verb: str) -> None:
    lines = wide_help(verb).splitlines()
    expected = [flag for model, skip in VERBS[verb] for flag in expected_flags(model, skip)]
    for flag, name, shown in expected:
        rows = [line for line in lines if line.lstrip("│ *").startswith(flag + " ")]  # an option's row
        assert rows, f"{verb}: field {name!r} is not offered as {flag}"
        if shown is not None:
            assert f"[default: {shown}]" in rows[0], f"{verb} {flag}: default {shown!r} not shown: {rows[0]}"


def test_help_groups_nested_models_in_their_own_panel(wide_help: Callable[[str], str]) -> None:
    text = wide_help("finetune")
    for panel, flag in (("LoRA", "--lora-r"), ("Distillation", "--distill-weight"), ("Data", "--task")):
        start = text.index(f"─ {panel}")
        assert flag in text[start:].split("╰")[0], f"{flag} is not in the {panel} panel"


def test_help_shows_the_real_default_not_a_restated_one(wide_help: Callable[[str], str]) -> None:
    text = wide_help("finetune")
    assert "(default 3)" not in text and "(default 16)" not in text
    assert "[default: 3.0]" in text and "[default: 16]" in text


def test_old_spellings_are_hidden_from_help(wide_help: Callable[[str], str]) -> None:
    old_spellings = [("compress", "--model"), ("compress", "-m")]
    old_spellings += [(verb, "--model") for verb in ("eval", "merge", "export")]
    for verb, old in old_spellings:
        rows = [line for line in wide_help(verb).splitlines() if line.startswith("│")]
        assert not [row for row in rows if f" {old} " in row], f"{verb} --help shows {old}"


@pytest.mark.parametrize("spelling", ["--model", "-m"])
def test_compress_old_spelling_still_works_and_names_the_new_one(
    tuneyard: Callable[..., Any], tmp_path: Path, spelling: str
) -> None:
    # An invalid calibration count stops the run after the options resolve: the model was accepted.
    result = tuneyard(
        "--yard", str(tmp_path), "compress", spelling, "some/model", "--set", "calib_samples=many"
    )
    assert result.code == 2
    assert f"note: {spelling} is now spelled --checkpoint; the old spelling still works." in result.err
    assert "calib_samples" in result.err and "'model'" not in result.err


def test_eval_old_spelling_still_works_and_names_the_new_one(
    tuneyard: Callable[..., Any], tmp_path: Path
) -> None:
    result = tuneyard("--yard", str(tmp_path), "eval", "--model", "some/model")
    assert result.code == 2
    assert "note: --model is now spelled --checkpoint; the old spelling still works." in result.err
    assert "give exactly one of --task NAME or --data DIR" in result.err  # checkpoint was given


def test_merge_old_spelling_still_works(tuneyard: Callable[..., Any], tmp_path: Path) -> None:
    result = tuneyard("--yard", str(tmp_path), "merge", "--model", str(tmp_path / "no-such-run"))
    assert result.code == 2
    assert "note: --model is now spelled --checkpoint; the old spelling still works." in result.err
    assert "no-such-run" in result.err  # the old spelling's value reached the merge


def test_new_spelling_prints_no_note(tuneyard: Callable[..., Any], tmp_path: Path) -> None:
    result = tuneyard("--yard", str(tmp_path), "eval", "--checkpoint", "some/model")
    assert result.code == 2 and "note:" not in result.err


def test_only_given_flags_reach_the_options(
    tuneyard: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defaults shown in --help are not passed on, so a --config file's values stand."""
    from tuneyard import config as config_module
    from tuneyard.errors import ConfigError

    seen: dict[str, Any] = {}

    def capture(model: Any, flags: Any, config_file: Any = None, overrides: Any = ()) -> Any:
        seen.update(flags=flags, config=config_file, overrides=list(overrides))
        raise ConfigError("stop here.")

    monkeypatch.setattr(config_module, "resolve_options", capture)
    config = tmp_path / "run.yaml"
    config.write_text("checkpoint: some/model\nepochs: 5\nlora: {r: 2, alpha: 4}\n")
    result = tuneyard(
        "finetune", "--config", str(config), "--lora-r", "16", "--report-to", "wandb, mlflow",
        "--no-packing", "--data", "./topics/", "--set", "seed=1",
    )  # fmt: skip
    assert result.code == 2 and "stop here." in result.err
    assert seen["flags"] == {
        "lora": {"r": 16},
        "report_to": ["wandb", "mlflow"],
        "packing": False,
        "data": "topics",
    }
    assert seen["config"] == config and seen["overrides"] == ["seed=1"]


def test_a_bad_choice_is_a_usage_error_naming_the_choices(tuneyard: Callable[..., Any]) -> None:
    result = tuneyard("finetune", "--strategy", "sideways")
    assert result.code == 2
    assert "sideways" in result.err and "lora" in result.err


def test_a_file_flag_reads_the_field_from_a_file(
    tuneyard: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tuneyard import config as config_module
    from tuneyard.errors import ConfigError

    seen: dict[str, Any] = {}

    def capture(model: Any, flags: Any, config_file: Any = None, overrides: Any = ()) -> Any:
        seen.update(flags)
        raise ConfigError("stop here.")

    monkeypatch.setattr(config_module, "resolve_options", capture)
    (tmp_path / "prompt.txt").write_text("Section of: {{ text }}")
    (tmp_path / "schema.yaml").write_text("type: object\n")
    result = tuneyard(
        "label",
        "--prompt-file",
        str(tmp_path / "prompt.txt"),
        "--answer-schema",
        str(tmp_path / "schema.yaml"),
    )
    assert result.code == 2 and "stop here." in result.err
    assert seen == {"prompt": "Section of: {{ text }}", "answer": {"json_schema": {"type": "object"}}}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--prompt-file", "missing.txt"], "--prompt-file missing.txt does not exist."),
        (["--answer-schema", "bad.json"], "--answer-schema bad.json is not JSON"),
    ],
)
def test_a_bad_file_flag_names_the_flag_and_the_file(
    tuneyard: Callable[..., Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    result = tuneyard("label", *args)
    assert result.code == 2 and message in result.err


def test_a_missing_field_names_its_flag(tuneyard: Callable[..., Any], tmp_path: Path) -> None:
    result = tuneyard("--yard", str(tmp_path), "compress", "--task", "sst2")
    assert result.code == 2
    assert "field 'model' is required: give --checkpoint or set model: in --config." in result.err
