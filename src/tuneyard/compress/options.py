"""Options of ``tuneyard compress`` (flags, ``--config FILE`` and ``--set`` resolve into these)."""

from __future__ import annotations

from pydantic import Field

from tuneyard.config import StrictModel


class CompressOptions(StrictModel):
    """Everything one compression depends on; saved in the manifest."""

    model: str = Field(description="HF hub id or local model folder")
    method: str = "standard"
    rank: int | str | None = Field(default=None, description="64, or per type: attn=40,ffn=240")
    ratio: float | None = Field(default=None, description="fraction of compressible weights kept")
    task: str | None = None
    data: str | None = None
    text_column: str = "text"
    text_pair_column: str | None = None
    label_column: str = "label"
    calib_samples: int = 256
    batch_size: int = 16
    max_length: int = 128
    alpha: float = 0.5
    seed: int = 0
    output_dir: str | None = None
