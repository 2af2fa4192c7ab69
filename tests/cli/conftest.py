"""Fixtures for CLI tests: run ``tuneyard`` in-process, and a small real yard to query."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tuneyard.cli import main
from tuneyard.yard import Manifest, Parent, Yard


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def tuneyard(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """``tuneyard("runs", "ls")`` -> exit code, stdout, stderr of the real entry point."""

    def run(*args: str) -> Result:
        capsys.readouterr()
        try:
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def cli_yard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Yard:
    """A yard (selected through TUNEYARD_HOME): a compressed model, a run made from it, a second run."""
    root = tmp_path / "yard"
    root.mkdir()
    monkeypatch.setenv("TUNEYARD_HOME", str(root))
    yard = Yard.open(root)
    base = Manifest(
        kind="compressed",
        name="x",
        arch="bert",
        method="fwsvd",
        rank=64,
        task="sst2",
        config={"calibration": {"samples": 128}},
        metrics={"params": 20_000_000},
    )
    with yard.create(
        base, yard.target_path("compressed", model="bert-base", method="fwsvd", rank=64)
    ) as writer:
        (writer.path / "model.safetensors").write_bytes(b"weights")
    for name, accuracy, lr in (("bert_base_lora", 0.91, 1e-4), ("bert_base_full", 0.87, 3e-5)):
        run = yard.start_run(
            Manifest(
                kind="run",
                name="x",
                arch="bert",
                method="fwsvd",
                rank=64,
                task="sst2",
                project="demo",
                dataset="sst2",
                strategy=name.rsplit("_", 1)[1],
                config={"lr": lr, "epochs": 3},
                parents=[Parent(id=base.id, path=base.path, role="init")],
            ),
            yard.target_path("run", project="demo", dataset="sst2", name=name),
        )
        run.manifest.metrics = {"sst2": {"accuracy": accuracy}}
        run.complete()
    return yard
