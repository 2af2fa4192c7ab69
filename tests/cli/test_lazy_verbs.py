"""Verbs load lazily: `runs ls` imports no other verb's module and no options model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_SRC = Path(__file__).resolve().parents[2] / "src"

SCRIPT = """
import sys
from tuneyard.cli import main
try:
    main(['--yard', sys.argv[1], *sys.argv[2:]])
except SystemExit as exc:
    assert not exc.code, exc.code
loaded = sorted(name for name in sys.modules if name.startswith('tuneyard.cli.') or name.endswith('.options'))
print('LOADED', ' '.join(loaded))
"""


def loaded_by(tmp_path: Path, *argv: str) -> set[str]:
    process = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), *argv],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_SRC)},
        timeout=120,
    )
    assert process.returncode == 0, process.stderr
    return set(process.stdout.strip().splitlines()[-1].split()[1:])


def test_runs_ls_loads_only_the_runs_module(tmp_path: Path) -> None:
    loaded = loaded_by(tmp_path, "runs", "ls")
    assert "tuneyard.cli.runs" in loaded
    verbs = {"compress", "finetune", "evaluate", "export", "validate", "label", "prepare", "grid", "pipeline"}
    assert not loaded & {f"tuneyard.cli.{verb}" for verb in verbs}
    assert not [name for name in loaded if name.endswith(".options")], loaded


def test_a_verbs_help_loads_its_own_module(tmp_path: Path) -> None:
    loaded = loaded_by(tmp_path, "compress", "--help")
    assert {"tuneyard.cli.compress", "tuneyard.compress.options"} <= loaded
    assert "tuneyard.cli.finetune" not in loaded and "tuneyard.train.options" not in loaded
