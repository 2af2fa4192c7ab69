"""Options of ``tuneyard serve``: where the web view listens."""

from __future__ import annotations

from pydantic import Field

from tuneyard.config import StrictModel

LOOPBACK = "127.0.0.1"


class ServeOptions(StrictModel):
    """The address the web view is served on."""

    host: str = Field(
        default=LOOPBACK,
        description="Address to listen on. 127.0.0.1 (default): this machine only; "
        "0.0.0.0 shows the yard to the whole network, without any login.",
    )
    port: int = Field(default=8765, ge=1, le=65535, description="TCP port.")
