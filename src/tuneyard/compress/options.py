"""Options of ``tuneyard compress`` (flags, ``--config FILE`` and ``--set`` resolve into these)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from tuneyard.config import Cli
from tuneyard.data.options import DataOptions

# Options that belong to one method or another; each method takes those its constructor names.
METHOD_SETTINGS = ("alpha",)


class CompressOptions(DataOptions):
    """Everything one compression depends on; saved in the manifest."""

    model: Annotated[str, Cli(flag="--checkpoint", aliases=("--model", "-m"))] = Field(
        description="HF hub id, local model folder or .gguf file."
    )
    method: Annotated[str, Cli(choices_from="tuneyard.compress.registry:METHODS")] = Field(
        default="standard", description="How the factors are computed."
    )
    rank: int | str | None = Field(
        default=None, description="Rank everywhere (64) or per type (attn=40,ffn=240)."
    )
    ratio: float | None = Field(default=None, description="Fraction of compressible weights kept, e.g. 0.5.")
    calib_samples: int = Field(default=256, description="Calibration rows from train.")
    batch_size: int = Field(default=16, description="Calibration batch size.")
    max_length: int = Field(default=128, description="Token length of calibration rows.")
    held_out_samples: int = Field(
        default=64,
        description="Validation rows the output error (and a decoder's perplexity) is measured on.",
    )
    alpha: float = Field(default=0.5, description="asvd: exponent of the activation scales.")
    seed: int = Field(default=0, description="Seed for sampling and head init.")
    output_dir: Annotated[str | None, Cli(path=True)] = Field(
        default=None, description="Write here instead of the yard layout path."
    )

    def method_settings(self) -> dict[str, object]:
        """The method-specific options, for :func:`tuneyard.compress.registry.build_method`."""
        return {name: getattr(self, name) for name in METHOD_SETTINGS}
