"""The options ``finetune`` offers for audio classification (``--max-seconds``, ``--no-resample``).

Kept apart from the audio code so the CLI and the option models load without torch.
"""

from __future__ import annotations

from pydantic import Field

from tuneyard.config import StrictModel


class AudioOptions(StrictModel):
    """How long a clip the model hears (longer clips are cropped, shorter ones padded), and whether
    a clip at another sampling rate than the model's is resampled or refused."""

    max_seconds: float = Field(
        default=4.0,
        gt=0,
        description="Audio: clips are cropped to their first N seconds and shorter ones padded with "
        "silence to N (a fixed-window extractor such as Whisper's pads to its own window).",
    )
    resample: bool = Field(
        default=True,
        description="Audio: resample clips at another sampling rate to the model's (torchcodec); "
        "--no-resample refuses them instead, naming the first one.",
    )
