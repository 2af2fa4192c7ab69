"""The CLI root: --version, --help on every verb, error formatting and exit codes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import typer.main

from tuneyard import __version__
from tuneyard.cli import app
from tuneyard.cli.register import VERBS

REPO_SRC = Path(__file__).resolve().parents[2] / "src"


def command_paths() -> list[list[str]]:
    """Every group and command of the app, as argument lists."""
    paths: list[list[str]] = []

    def walk(command: Any, path: list[str]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return paths


def test_version(tuneyard: Callable[..., object]) -> None:
    result = tuneyard("--version")
    assert (result.code, result.out) == (0, f"tuneyard {__version__}\n")  # type: ignore[attr-defined]


def test_root_help_lists_the_verbs(tuneyard: Callable[..., object]) -> None:
    result = tuneyard("--help")
    assert result.code == 0  # type: ignore[attr-defined]
    panel = result.out.split("─ Commands ─")[1].splitlines()[1:]  # type: ignore[attr-defined]
    # a verb's row starts with its name; wrapped help continues on rows that start with spaces
    listed = [line.split()[1] for line in panel if line.startswith("│ ") and line[2] != " "]
    assert listed == list(VERBS)  # every registered verb, in the table's order


@pytest.mark.parametrize("path", command_paths()[1:], ids=lambda path: " ".join(path))
def test_every_command_has_help_with_an_example(tuneyard: Callable[..., object], path: list[str]) -> None:
    result = tuneyard(*path, "--help")
    assert result.code == 0, result.err  # type: ignore[attr-defined]
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]  # type: ignore[attr-defined]
    if not hasattr(command, "commands"):  # a command, not a group
        assert "Example:" in result.out and "tuneyard " in result.out  # type: ignore[attr-defined]


def test_user_error_prints_one_message_and_exits_2(tuneyard: Callable[..., object], tmp_path: Path) -> None:
    result = tuneyard("--yard", str(tmp_path), "runs", "ls", "--where", "rank >= high")
    assert result.code == 2  # type: ignore[attr-defined]
    assert result.err.splitlines() == [  # type: ignore[attr-defined]
        "error: --where: rank holds numbers, not text (at column 9).",
        "         rank >= high",
        "                 ^^^^",
        "       Compare it with a number, e.g. >= 0.8.",
    ]
    assert result.out == ""  # type: ignore[attr-defined]


def test_usage_error_exits_2(tuneyard: Callable[..., object]) -> None:
    result = tuneyard("runs", "ls", "--no-such-option")
    assert result.code == 2 and "No such option" in result.err  # type: ignore[attr-defined]


BROKEN_COMMAND = """
import sys
from tuneyard.cli import app, main
from tuneyard.errors import InternalError

@app.command("boom")
def boom(kind: str) -> None:
    '''Fail on purpose.'''
    if kind == "internal":
        raise InternalError("index schema 9 is newer than this tuneyard", "Upgrade tuneyard.")
    raise RuntimeError("a bug")

main(sys.argv[1:])
"""


@pytest.mark.parametrize(
    ("kind", "stderr_start"), [("internal", "error: index schema 9"), ("bug", "Traceback")]
)
def test_internal_errors_exit_1(kind: str, stderr_start: str) -> None:
    process = subprocess.run(
        [sys.executable, "-c", BROKEN_COMMAND, "boom", kind],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_SRC)},
        timeout=120,
    )
    assert process.returncode == 1
    assert process.stderr.startswith(stderr_start)


def test_read_only_commands_do_not_load_heavy_libraries(tmp_path: Path) -> None:
    script = (
        "import sys\n"
        "from tuneyard.cli import main\n"
        "for argv in (['runs', 'ls'], ['runs', 'ls', '--where', 'metrics.accuracy > 0.5', '-f', 'json'],"
        " ['runs', 'aggregate'], ['--help']):\n"
        "    try:\n"
        "        main(['--yard', sys.argv[1], *argv])\n"
        "    except SystemExit as exc:\n"
        "        assert not exc.code, exc.code\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'datasets',"
        " 'pandas', 'peft', 'accelerate', 'sklearn', 'matplotlib', 'numpy'})\n"
        "print('HEAVY', heavy)\n"
    )
    process = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_SRC)},
        timeout=120,
    )
    assert process.returncode == 0, process.stderr
    assert process.stdout.strip().splitlines()[-1] == "HEAVY []"
