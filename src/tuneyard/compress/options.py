"""Options of ``tuneyard compress`` (flags, ``--config FILE`` and ``--set`` resolve into these)."""

from __future__ import annotations

from pydantic import Field

from tuneyard.data.options import DataOptions

# Options that belong to one method or another; each method takes those its constructor names.
METHOD_SETTINGS = ("alpha",)


class CompressOptions(DataOptions):
    """Everything one compression depends on; saved in the manifest."""

    model: str = Field(description="HF hub id or local model folder")
    method: str = "standard"
    rank: int | str | None = Field(default=None, description="64, or per type: attn=40,ffn=240")
    ratio: float | None = Field(default=None, description="fraction of compressible weights kept")
    calib_samples: int = 256
    batch_size: int = 16
    max_length: int = 128
    held_out_samples: int = Field(
        default=64, description="validation rows the output error (and a decoder's perplexity) is measured on"
    )
    alpha: float = Field(default=0.5, description="asvd: exponent of the activation scales")
    seed: int = 0
    output_dir: str | None = None

    def method_settings(self) -> dict[str, object]:
        """The method-specific options, for :func:`tuneyard.compress.registry.build_method`."""
        return {name: getattr(self, name) for name in METHOD_SETTINGS}
