"""Options of ``tuneyard grid``: how the cells of an experiment file run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from tuneyard.config import StrictModel

if TYPE_CHECKING:
    from tuneyard.experiments.backends import Execution


class GridRunOptions(StrictModel):
    """Which cells run again, and where: here (``jobs`` at once) or on Ray."""

    retry_failed: bool = Field(default=False, description="Run failed cells again.")
    jobs: int = Field(default=1, ge=1, description="Cells run side by side here, sharing the cores.")
    backend: str = Field(
        default="local",
        description="local, or ray: each cell a Ray task (a local instance, or --ray-address).",
    )
    ray_address: str | None = Field(
        default=None, description="An existing Ray cluster (ray://... or host:port)."
    )
    cpus_per_cell: float = Field(default=1.0, ge=0.1, description="Ray: CPUs each cell asks for.")
    gpus_per_cell: float = Field(
        default=0.0, ge=0.0, description="Ray: GPUs each cell asks for (Ray sets the GPUs it sees)."
    )

    def execution(self) -> Execution:
        """The :class:`~tuneyard.experiments.backends.Execution` these options describe."""
        from tuneyard.errors import ConfigError
        from tuneyard.experiments.backends import Execution

        if self.backend not in ("local", "ray"):
            raise ConfigError(f"--backend {self.backend!r} is not a backend.", "Use local or ray.")
        return Execution(self.backend, self.jobs, self.ray_address, self.cpus_per_cell, self.gpus_per_cell)  # type: ignore[arg-type]
