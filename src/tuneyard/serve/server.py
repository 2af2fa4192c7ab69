"""Run the web view: check the address is free, then serve the application with uvicorn."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import TYPE_CHECKING

from tuneyard.errors import ConfigError
from tuneyard.serve.options import ServeOptions

if TYPE_CHECKING:
    from fastapi import FastAPI

    from tuneyard.yard.root import Yard


def check_address(host: str, port: int) -> None:
    """Refuse an address that cannot be listened on, before uvicorn logs its own failure and exits 1."""
    try:
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}.",
            "Pick another port (--port 8800), or stop what is listening there.",
        ) from exc


def prepared_app(yard: str | Path | Yard, options: ServeOptions) -> FastAPI:
    """The application for the yard at ``yard`` (a folder, a URL or the yard opened already),
    once its index and the address are known to be usable."""
    from tuneyard.serve.app import create_app

    app = create_app(yard)
    check_address(options.host, options.port)
    return app


def run(app: FastAPI, options: ServeOptions) -> None:
    """Serve ``app`` until interrupted (Ctrl-C)."""
    import uvicorn

    uvicorn.run(app, host=options.host, port=options.port, log_level="warning")


def serve(yard: str | Path, options: ServeOptions) -> None:
    """Serve the yard at ``yard`` (a folder or a URL) read-only until interrupted: ``tuneyard serve``
    from Python."""
    run(prepared_app(yard, options), options)
