"""Options of ``tuneyard report``: :func:`tuneyard.report.build.build_report`'s arguments but the path."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from tuneyard.config import Cli, StrictModel


class ReportOptions(StrictModel):
    """What to draw for a folder, and where the PNGs go."""

    output_dir: Annotated[str | None, Cli(path=True)] = Field(
        default=None, description="Folder for the PNGs (default PATH/report)."
    )
    metric: str | None = Field(
        default=None,
        description="Metric for the comparison chart, as in --where: sst2.accuracy "
        "(default: the most common).",
    )
    base: Annotated[str | None, Cli(path=True)] = Field(
        default=None,
        description="Original model of a compressed one, for the energy-kept plot "
        "(default: from compression_info).",
    )
    force: bool = Field(
        default=False, description="Replace an earlier report (PNGs only) in the output folder."
    )
