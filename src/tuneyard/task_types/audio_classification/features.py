"""Audio rows to model inputs, once per dataset: decoded, resampled, cropped or padded, extracted.

Decoding and resampling are torchcodec's (its ``AudioDecoder`` asked for the extractor's
rate and one channel); nothing here resamples by hand. Each clip is decoded on its own so
that a file FFmpeg cannot read, an empty one, or (``--no-resample``) one at another rate
is refused naming its row and file. A clip is cropped to its first ``max_seconds`` and a
shorter one padded with silence up to that length (a fixed-window extractor, Whisper's,
pads to its own window instead). The extraction is a ``datasets`` ``map``: its cache file
is keyed by the rows' fingerprint, the extractor and the options, so a second epoch never
extracts again and a second run (or eval) on the same data reads the cached features.
Finetune extracts every split while it checks the data, before a run folder exists: a bad
clip is refused then, and training reads what that check cached.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import DataError
from tuneyard.task_types.audio_classification.data import AUDIO_COLUMN
from tuneyard.task_types.audio_classification.options import AudioOptions

if TYPE_CHECKING:
    import numpy as np
    from datasets import Dataset

FIX = "Remove or replace the file (FFmpeg must be able to decode it)."


def window_samples(extractor: Any, max_seconds: float) -> int:
    """How many samples every clip becomes: the extractor's fixed window, else ``max_seconds``."""
    fixed = getattr(extractor, "n_samples", None)  # Whisper's: chunk_length seconds, always padded to
    return int(fixed) if fixed else round(max_seconds * extractor.sampling_rate)


def undecoded(rows: Dataset) -> Dataset:
    """``rows``' audio as datasets stores it (``{"bytes", "path"}``), for decoding clip by clip."""
    from datasets import Audio

    if AUDIO_COLUMN not in rows.column_names:
        raise DataError(
            f"the rows have no {AUDIO_COLUMN!r} column (columns: {', '.join(rows.column_names)}): "
            "an audio model needs audio rows.",
            "Give an audiofolder or a prepared audio dataset, or a text model for text rows.",
        )
    return rows.cast_column(AUDIO_COLUMN, Audio(decode=False))


def clip_name(value: dict[str, Any]) -> str:
    """A clip's file name as the rows store it ('embedded audio' when it has none)."""
    return Path(str(value.get("path") or "")).name or "embedded audio"


def read_clip(value: dict[str, Any], rate: int, where: str, options: AudioOptions) -> np.ndarray:
    """One clip (``{"bytes", "path"}``) as mono float samples at ``rate``; ``where`` names its row
    in a refusal (an empty or undecodable file, or another rate when ``options`` refuse resampling)."""
    from torchcodec.decoders import AudioDecoder

    where = f"{where} ({clip_name(value)})"
    source = value["bytes"] if value.get("bytes") is not None else value.get("path")
    empty = source == b"" or (
        isinstance(source, str) and Path(source).is_file() and not Path(source).stat().st_size
    )
    if source is None or empty:
        raise DataError(f"{where} is an empty audio file.", "Remove the row or re-record the clip.")
    try:
        decoder = AudioDecoder(source, sample_rate=rate, num_channels=1)
        native = decoder.metadata.sample_rate
        if not options.resample and native != rate:  # refused before decoding the whole clip
            raise DataError(
                f"{where} is sampled at {native} Hz, the model's feature extractor takes {rate} Hz, "
                "and --no-resample refuses to resample it.",
                f"Convert the files to {rate} Hz (e.g. ffmpeg -i IN -ar {rate} OUT), or drop "
                "--no-resample to let torchcodec resample them.",
            )
        samples = decoder.get_all_samples().data
    except (RuntimeError, ValueError) as exc:
        reason = re.sub(r"^.*\.cpp:\d+, ", "", str(exc)).strip()  # torchcodec's C++ location is noise
        raise DataError(f"{where} could not be decoded as audio: {reason}", FIX) from None
    if samples.numel() == 0:
        raise DataError(
            f"{where} is an empty audio clip (no samples).", "Remove the row or re-record the clip."
        )
    return samples[0].numpy()


def extract(rows: Dataset, extractor: Any, options: AudioOptions, split: str) -> Dataset:
    """``rows`` as the extractor's inputs (``input_values`` or ``input_features``), ``labels`` and
    ``clip_seconds`` (each clip's own length before cropping), from the cache when it has them."""
    return extraction(rows, extractor, options, split)[0]


def extraction(rows: Dataset, extractor: Any, options: AudioOptions, split: str) -> tuple[Dataset, int]:
    """:func:`extract`'s features and how many clips this call decoded and extracted: 0 when the
    ``datasets`` cache served them (a later epoch, a second run or eval on the same rows)."""
    rate = extractor.sampling_rate
    window = window_samples(extractor, options.max_seconds)
    keep = min(round(options.max_seconds * rate), window)
    extracted = [0]  # counted inside the map, which the cache skips (0 when hashed: same fingerprint)

    def encode(batch: dict[str, list[Any]], indices: list[int]) -> Any:
        clips = [
            read_clip(value, rate, f"{split} row {index}", options)
            for value, index in zip(batch[AUDIO_COLUMN], indices, strict=True)
        ]
        extracted[0] += len(clips)
        features = extractor(
            [clip[:keep] for clip in clips],
            sampling_rate=rate,
            padding="max_length",
            max_length=window,
            truncation=True,
            return_attention_mask=True,
        )
        return {**features, "labels": batch["label"], "clip_seconds": [len(clip) / rate for clip in clips]}

    features = undecoded(rows).map(
        encode,
        batched=True,
        batch_size=32,
        with_indices=True,
        remove_columns=rows.column_names,
        desc=f"features ({split})",
    )
    return features, extracted[0]


def feature_batches(
    extractor: Any, rows: Dataset, batch_size: int, options: AudioOptions, split: str
) -> list[Any]:
    """``rows``' features as tensor batches of the extractor's model inputs, with ``labels`` when
    every row has one (compress's calibration and held-out rows)."""
    features = extract(rows, extractor, options, split)
    labelled = all(label != -1 for label in features["labels"])
    names = [name for name in extractor.model_input_names if name in features.column_names]
    features = features.with_format("torch", columns=[*names, *(["labels"] if labelled else [])])
    return [dict(features[start : start + batch_size]) for start in range(0, len(features), batch_size)]
