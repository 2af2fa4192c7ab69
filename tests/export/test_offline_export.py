"""``tuneyard export`` with the network refused: the converter comes with the install, not at first use."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tuneyard.export.converter import SCRIPT, installed_folder

# Loaded by every Python process of the command (the CLI and the converter's subprocess)
# through PYTHONPATH: a connection or name lookup for anything but this machine fails.
GUARD = """
import socket

LOOPBACK = ("127.0.0.1", "::1", "localhost")
_connect, _getaddrinfo = socket.socket.connect, socket.getaddrinfo


def connect(self, address):
    if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
        raise OSError(f"network refused by the test: {address}")
    return _connect(self, address)


def getaddrinfo(host, *args, **kwargs):
    if host not in LOOPBACK:
        raise socket.gaierror(f"network refused by the test: {host}")
    return _getaddrinfo(host, *args, **kwargs)


socket.socket.connect, socket.getaddrinfo = connect, getaddrinfo
"""
DEAD_PROXY = "http://127.0.0.1:9"


def offline(tmp_path: Path, cache: Path) -> dict[str, str]:
    guard = tmp_path / "guard"
    guard.mkdir(exist_ok=True)
    (guard / "sitecustomize.py").write_text(GUARD)
    env = {key: value for key, value in os.environ.items() if key != "TUNEYARD_LLAMA_CPP"}
    proxies = {
        name: DEAD_PROXY for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy")
    }
    return env | proxies | {"PYTHONPATH": str(guard), "XDG_CACHE_HOME": str(cache), "HF_HUB_OFFLINE": "1"}


def run(env: dict[str, str], *args: object) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


def test_export_runs_offline_from_the_installed_converter_and_never_downloads(
    cli, smol_decoder, tmp_path, monkeypatch
) -> None:
    installed = installed_folder()
    assert (installed / SCRIPT).is_file(), (
        f"the install step has not run: {sys.executable} -m tuneyard.export.converter"
    )
    export = ("--yard", tmp_path / "yard", "export", "--no-validate", "--quant", "f16",
              "--checkpoint", smol_decoder)  # fmt: skip
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    monkeypatch.delenv("TUNEYARD_LLAMA_CPP", raising=False)
    before_install = cli(*export)  # this process has the network: an export that fetched would pass
    assert before_install.exit_code == 2, before_install.stderr
    assert before_install.stderr.startswith("error: llama.cpp's converter is not installed")
    assert "-m tuneyard.export.converter" in before_install.stderr
    assert not (tmp_path / "yard" / "exports").exists() and not cache.exists()

    # What the install step leaves in a fresh cache, copied: the test itself stays offline.
    shutil.copytree(installed, cache / "tuneyard" / installed.name, symlinks=True)
    env = offline(tmp_path, cache)
    probes = "import socket\nfor host in ('pypi.org', '151.101.0.223'):\n" + (
        "    try:\n        socket.create_connection((host, 443), timeout=5)\n"
        "    except OSError as exc:\n        print(exc)\n"
    )
    refused = run(env, "-c", probes).stdout.splitlines()
    assert len(refused) == 2 and all("network refused by the test" in line for line in refused)  # guarded
    exported = run(env, "-m", "tuneyard", *export)
    assert exported.returncode == 0, exported.stderr
    gguf = Path(exported.stdout.strip().splitlines()[-1].removeprefix("saved "))
    assert gguf == tmp_path / "yard" / "exports" / "tiny-smol_f16" / "tiny-smol-f16.gguf"
    assert gguf.read_bytes()[:4] == b"GGUF"
    assert "fetching" not in exported.stderr and "network refused" not in exported.stderr
