"""``audio_classification``: a clip of speech or sound to a class.

Speech encoders (Wav2Vec2, HuBERT, Whisper's encoder, any model
``AutoModelForAudioClassification`` builds) with their ``AutoFeatureExtractor``, on an
audiofolder or a prepared audio dataset. Its parts live beside this module: ``data``
(rows and labels, from an audiofolder or a table of audio paths), ``features`` (decoding,
resampling, crop/pad and the cached extraction), ``model`` (loading, for training and for
compress), ``evaluation`` and ``options`` (``--max-seconds``, ``--no-resample``).
The classifier parts every input kind shares (head, output space, metrics, the eval
files) are reused from :mod:`tuneyard.task_types.classifier` and sequence classification.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import DataError
from tuneyard.task_types.audio_classification import data, model
from tuneyard.task_types.audio_classification.options import AudioOptions
from tuneyard.task_types.base import (
    CompressionSubject,
    DataRole,
    EvaluationRole,
    LoadSettings,
    ProgressCallback,
    TaskType,
    TrainingSettings,
)
from tuneyard.task_types.classifier import ClassifierModel
from tuneyard.task_types.sequence_classification import ClassifierCompression, ClassifierTraining

if TYPE_CHECKING:
    import torch
    from datasets import Dataset

    from tuneyard.components.calibration import Batch
    from tuneyard.components.distillation import Teacher
    from tuneyard.data.loading import TaskData
    from tuneyard.data.options import ColumnOptions
    from tuneyard.data.tasks import TaskSpec
    from tuneyard.models.checkpoint import StartingCheckpoint
    from tuneyard.task_types.sequence_classification.eval_files import ClassificationResult


class AudioData(DataRole):
    """An audio column (``--audio-column``; or an audiofolder) with a label."""

    def recognize(self, column_names: list[str], columns: ColumnOptions) -> int:
        return 3 if columns.audio_column in column_names else 0

    def load_folder(
        self, folder: Path, columns: ColumnOptions, require_labels: bool
    ) -> tuple[TaskSpec, dict[str, Dataset]]:
        return data.load_folder(folder, columns, require_labels)

    def check_lengths(self, task_data: TaskData, extractor: Any, settings: TrainingSettings) -> list[str]:
        # Every clip decodes (an unreadable or empty file, or one at another rate under
        # --no-resample, is refused, named, before anything is written) as its features are
        # extracted into the cache training then reads; the notes say how long the clips are,
        # for choosing --max-seconds, and how many clips this run had to extract.
        import time

        from tuneyard.task_types.audio_classification.features import extraction

        options = settings.task_options or AudioOptions()
        started, seconds, extracted = time.perf_counter(), [], 0
        for split in task_data.splits:
            features, count = extraction(task_data.split(split), extractor, options, split)
            seconds += features["clip_seconds"]
            extracted += count
        cached = len(seconds) - extracted
        return [
            f"clips last {min(seconds):.2f} to {max(seconds):.2f} s; --max-seconds crops longer ones "
            "to their start and pads shorter ones with silence.",
            f"features: {extracted} clips extracted in {time.perf_counter() - started:.1f} s, "
            f"{cached} read from the cache (a later epoch, run or eval on these rows extracts none).",
        ]

    def check_trainable(self, task_data: TaskData) -> None:
        if task_data.spec.num_labels < 2:
            raise DataError(
                f"{task_data.source} has {task_data.spec.num_labels} distinct label(s); "
                "classification needs at least 2.",
                "Check --label-column (an audiofolder: a folder per label).",
            )


class AudioClassifierModel(ClassifierModel):
    """``AutoModelForAudioClassification`` with its feature extractor."""

    architecture_mapping = model.MAPPING

    def load_tokenizer(self, checkpoint: StartingCheckpoint, spec: TaskSpec) -> Any:
        return model.load_extractor(checkpoint.source)

    def load(
        self,
        checkpoint: StartingCheckpoint,
        spec: TaskSpec,
        reset_head: bool,
        seed: int,
        settings: LoadSettings = LoadSettings(),
    ) -> Any:
        return model.load_model(checkpoint, spec, reset_head, seed, settings)

    def load_for_eval(self, folder: Path, device: torch.device) -> tuple[Any, Any]:
        return model.load_for_eval(folder, device)

    def load_adapter_base(self, base: Path | str, adapter: Path) -> Any:
        return model.load_adapter_base(base, adapter)

    def load_processor(self, folder: Path) -> Any:
        return model.load_extractor(model.extractor_folder(folder))

    def head_modules(self, classifier: Any) -> list[str]:
        # Every top-level module but the one holding the encoder's blocks: Whisper's base model
        # prefix ("model") names no child of WhisperForAudioClassification, so the shared rule
        # (components.heads) would count its encoder as head.
        from tuneyard.models.layout import layout_of

        encoder = layout_of(classifier).blocks.partition(".")[0]
        return [
            name
            for name, child in classifier.named_children()
            if name != encoder and any(True for _ in child.parameters())
        ]

    def probe_inputs(self, extractor: Any) -> dict[str, Any]:
        import numpy as np

        rate = extractor.sampling_rate
        tone = np.sin(2 * np.pi * 440 * np.arange(rate) / rate).astype(np.float32)  # one second of A4
        return dict(extractor(tone, sampling_rate=rate, return_tensors="pt"))


class AudioTraining(ClassifierTraining):
    """The plain Trainer on the cached features (every clip the same length: no padding per batch)."""

    distills = False

    def build_trainer(
        self,
        classifier: Any,
        arguments: Any,
        task_data: TaskData,
        extractor: Any,
        settings: TrainingSettings,
        callbacks: list[Any],
        teacher: Teacher | None = None,
    ) -> Any:
        from transformers import Trainer, default_data_collator

        from tuneyard.components.distributed import main_process_first
        from tuneyard.task_types.audio_classification.features import extract
        from tuneyard.task_types.sequence_classification.metrics import trainer_metrics

        options = settings.task_options or AudioOptions()
        with main_process_first():
            features = {
                split: extract(task_data.split(split), extractor, options, split)
                for split in ("train", "validation")
            }
        return Trainer(
            model=classifier,
            args=arguments,
            train_dataset=features["train"],
            eval_dataset=features["validation"],
            data_collator=default_data_collator,
            processing_class=extractor,
            compute_metrics=trainer_metrics(task_data.spec),
            callbacks=callbacks,
        )


class AudioCompression(ClassifierCompression):
    """The audio classifier and its extractor; calibration rows are the cached features.

    Compress takes no task options: calibration clips are cropped/padded to the default
    ``--max-seconds`` (a fixed-window extractor, Whisper's, to its own window).
    """

    def load_for_compression(self, model_id: str, spec: TaskSpec | None, seed: int) -> CompressionSubject:
        return model.load_for_compression(model_id, spec, seed)

    def calibration_batches(
        self, tokenizer: Any, rows: Dataset, spec: TaskSpec, batch_size: int, max_length: int
    ) -> list[Batch]:
        from tuneyard.task_types.audio_classification.features import feature_batches

        return feature_batches(tokenizer, rows, batch_size, AudioOptions(), "calibration")


class AudioEvaluation(EvaluationRole):
    """Classify the split's clips, cropped/padded as the model was trained (its ``--max-seconds``)."""

    def evaluate(
        self,
        classifier: Any,
        extractor: Any,
        dataset: Dataset,
        spec: TaskSpec,
        split: str,
        batch_size: int,
        max_length: int | None,
        progress: ProgressCallback | None = None,
        answers: Any = None,
        task_options: Any = None,
    ) -> ClassificationResult:
        from tuneyard.task_types.audio_classification.evaluation import evaluate_audio

        options = task_options or AudioOptions()
        return evaluate_audio(classifier, extractor, dataset, spec, split, batch_size, options, progress)


TASK_TYPE = TaskType(
    name=data.NAME,
    summary="audio clips (speech, sounds) to a class: wav2vec2, HuBERT, Whisper encoders",
    hub_task="audio-classification",
    data=AudioData(),
    model=AudioClassifierModel(),
    training=AudioTraining(),
    evaluation=AudioEvaluation(),
    compression=AudioCompression(),
    options=AudioOptions,
)
