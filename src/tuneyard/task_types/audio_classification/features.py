"""Audio rows to model inputs, once per dataset: decoded, resampled, cropped or padded, extracted.

Decoding and resampling are torchcodec's, through datasets' ``Audio`` feature cast to the
extractor's rate and to one channel; nothing here resamples by hand. A clip is cropped to
its first ``max_seconds`` and a shorter one padded with silence up to that length (a
fixed-window extractor, Whisper's, pads to its own window instead). The extraction is a
``datasets`` ``map``: its cache file is keyed by the rows' fingerprint, the extractor and
the length, so a second epoch never extracts again and a second run on the same data
reads the cached features.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneyard.errors import DataError
from tuneyard.task_types.audio_classification.data import AUDIO_COLUMN

if TYPE_CHECKING:
    from datasets import Dataset


def window_samples(extractor: Any, max_seconds: float) -> int:
    """How many samples every clip becomes: the extractor's fixed window, else ``max_seconds``."""
    fixed = getattr(extractor, "n_samples", None)  # Whisper's: chunk_length seconds, always padded to
    return int(fixed) if fixed else round(max_seconds * extractor.sampling_rate)


def decoded(rows: Dataset, extractor: Any) -> Dataset:
    """``rows`` whose audio decodes to mono at the extractor's sampling rate (torchcodec resamples)."""
    from datasets import Audio

    if AUDIO_COLUMN not in rows.column_names:
        raise DataError(
            f"the rows have no {AUDIO_COLUMN!r} column (columns: {', '.join(rows.column_names)}): "
            "an audio model needs audio rows.",
            "Give an audiofolder or a prepared audio dataset, or a text model for text rows.",
        )
    return rows.cast_column(AUDIO_COLUMN, Audio(sampling_rate=extractor.sampling_rate, num_channels=1))


def extract(rows: Dataset, extractor: Any, max_seconds: float, split: str) -> Dataset:
    """``rows`` as the extractor's inputs (``input_values`` or ``input_features``) plus ``labels``."""
    crop = round(max_seconds * extractor.sampling_rate)
    window = window_samples(extractor, max_seconds)
    keep = min(crop, window)

    def encode(batch: dict[str, list[Any]]) -> Any:
        arrays = []
        for index, clip in enumerate(batch[AUDIO_COLUMN]):
            samples = clip.get_all_samples().data
            if samples.numel() == 0:
                raise DataError(
                    f"{split} row {batch['id'][index]} has an empty audio clip.",
                    "Remove the file or re-record it.",
                )
            arrays.append(samples[0, :keep].numpy())
        features = extractor(
            arrays,
            sampling_rate=extractor.sampling_rate,
            padding="max_length",
            max_length=window,
            truncation=True,
            return_attention_mask=True,
        )
        return {**features, "labels": batch["label"]}

    try:
        return decoded(rows, extractor).map(
            encode, batched=True, batch_size=32, remove_columns=rows.column_names, desc=f"features ({split})"
        )
    except RuntimeError as exc:  # torchcodec: a file it cannot decode
        raise DataError(
            f"{split}: an audio file could not be decoded: {exc}",
            "Check that every file is a readable audio file (FFmpeg decodes it).",
        ) from None


def durations(rows: Dataset, extractor: Any, split: str) -> list[float]:
    """Each clip's duration in seconds, decoded at the extractor's rate; an unreadable or empty clip
    is refused with its row and file (before a run folder exists: the data role's check calls this)."""
    from tuneyard.task_types.audio_classification.data import audio_sources

    names = audio_sources(rows)
    audio = decoded(rows, extractor).select_columns([AUDIO_COLUMN])
    found: list[float] = []
    for index in range(len(audio)):
        where = f"{split} row {index} ({names[index] or 'embedded audio'})"
        try:
            seconds = audio[index][AUDIO_COLUMN].get_all_samples().duration_seconds
        except (RuntimeError, ValueError) as exc:
            raise DataError(f"{where} could not be decoded: {exc}", "Remove or replace the file.") from None
        if seconds <= 0:
            raise DataError(f"{where} is an empty audio clip.", "Remove or replace the file.")
        found.append(seconds)
    return found
