"""Audio classifiers: ``AutoModelForAudioClassification`` with its ``AutoFeatureExtractor``.

Wav2Vec2 and HuBERT load as ``...ForSequenceClassification``, Whisper's encoder as
``WhisperForAudioClassification``: whatever the audio auto class maps a config to. A
checkpoint whose head has another number of labels is refused unless ``--reset-head``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import CompressionError, ModelError, TrainingError
from tuneyard.task_types.base import CompressionSubject, LoadSettings
from tuneyard.task_types.sequence_classification.model import label_options

if TYPE_CHECKING:
    import torch

    from tuneyard.data.tasks import TaskSpec
    from tuneyard.models.checkpoint import StartingCheckpoint

MAPPING = "MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES"


def is_audio_classifier(architecture: str) -> bool:
    """Whether a ``config.json`` architecture is one the audio classification auto class builds."""
    import transformers.models.auto.modeling_auto as auto

    return architecture in getattr(auto, MAPPING).values()


def load_extractor(source: str | Path) -> Any:
    """The feature extractor saved with a checkpoint (a refusal naming the fix when there is none)."""
    from transformers import AutoFeatureExtractor

    try:
        return AutoFeatureExtractor.from_pretrained(source)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"{source} has no loadable feature extractor ({exc}): an audio model needs one.",
            "Save it beside the model (feature_extractor.save_pretrained(folder)); a text model "
            "classifies text rows, not audio.",
        ) from exc


def load_model(
    parent: StartingCheckpoint, spec: TaskSpec, reset_head: bool, seed: int, settings: LoadSettings
) -> Any:
    """The checkpoint as an audio classifier for ``spec`` (a new head is seeded)."""
    from transformers import AutoConfig, AutoModelForAudioClassification, set_seed

    set_seed(seed)
    try:
        config = AutoConfig.from_pretrained(parent.source)
    except (OSError, ValueError) as exc:
        raise ModelError(f"checkpoint {parent.source} has no usable config.json: {exc}") from exc
    trained = any(is_audio_classifier(name) for name in getattr(config, "architectures", None) or ())
    if trained and config.num_labels != spec.num_labels and not reset_head:
        raise TrainingError(
            f"checkpoint {parent.source} has a classifier head with {config.num_labels} labels, "
            f"but task {spec.name!r} has {spec.num_labels} ({', '.join(spec.label_names)}).",
            "Pass --reset-head to replace the head with a fresh one of the right size.",
        )
    try:
        return AutoModelForAudioClassification.from_pretrained(
            parent.source,
            ignore_mismatched_sizes=reset_head,
            **label_options(spec),
            **settings.pretrained_kwargs(),
        )
    except ValueError as exc:
        raise ModelError(
            f"checkpoint {parent.source} is not an audio model ({str(exc).splitlines()[0]}).",
            "Give a speech encoder (wav2vec2, HuBERT, Whisper...); a text model classifies text rows.",
        ) from exc
    except OSError as exc:
        raise ModelError(f"checkpoint {parent.source} is not a loadable model: {exc}") from exc


def load_for_eval(folder: Path, device: torch.device) -> tuple[Any, Any]:
    """Model (on ``device``) and feature extractor of a model folder; refuses one without a head."""
    from tuneyard.task_types.model_loading import load

    model = load(folder)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not is_audio_classifier(type(inner).__name__):
        raise ModelError(
            f"{folder} holds a {type(inner).__name__}, which has no audio classification head.",
            "Evaluate a fine-tuned audio classifier (tuneyard finetune ... produces one).",
        )
    return model.to(device), load_extractor(extractor_folder(folder))


def extractor_folder(folder: Path) -> Path | str:
    """Where a folder's feature extractor is: the folder, or an adapter's base."""
    from tuneyard.models.loading import ADAPTER_CONFIG, adapter_base

    if (folder / ADAPTER_CONFIG).is_file() and not (folder / "preprocessor_config.json").is_file():
        return adapter_base(folder)
    return folder


def load_adapter_base(base: Path | str, adapter: Path) -> Any:
    """The base of an audio adapter, with a head of the adapter's size (its saved head replaces it)."""
    from transformers import AutoModelForAudioClassification

    from tuneyard.models.loading import transformers_errors_only
    from tuneyard.task_types.sequence_classification.model import adapter_head_size

    num_labels, id2label = adapter_head_size(adapter)
    options: dict[str, Any] = {}
    if num_labels is not None:  # a base with a head of another size keeps its body only
        options |= {"num_labels": num_labels, "ignore_mismatched_sizes": True}
    if id2label is not None:
        options |= {"id2label": id2label, "label2id": {label: index for index, label in id2label.items()}}
    with transformers_errors_only():
        return AutoModelForAudioClassification.from_pretrained(base, **options)


def load_for_compression(model_id: str, spec: TaskSpec | None, seed: int) -> CompressionSubject:
    """The audio model to compress, its feature extractor, and the state of its head.

    An audio classifier loads as one (head ``trained``); a bare speech encoder loads as an
    audio classifier with a seeded new head when a task is given (``untrained``), else as
    its own class (``none``), as text encoders do in sequence classification.
    """
    import torch
    from transformers import AutoModelForAudioClassification

    from tuneyard.models.loading import load_config, model_class_for, transformers_errors_only

    config = load_config(model_id)
    labels = spec.num_labels if spec is not None else 0
    extractor = load_extractor(model_id)
    if any(is_audio_classifier(name) for name in getattr(config, "architectures", None) or ()):
        if labels and labels != config.num_labels:
            raise CompressionError(
                f"{model_id} classifies into {config.num_labels} labels, the task data has {labels}.",
                "Calibrate with data of the model's own task, or compress the base encoder.",
            )
        model, head = AutoModelForAudioClassification.from_pretrained(model_id), "trained"
    elif labels and spec is not None:
        torch.manual_seed(seed)
        with transformers_errors_only():  # transformers' "newly initialised" warning: compress notes it
            model = AutoModelForAudioClassification.from_pretrained(model_id, **label_options(spec))
        head = "untrained"
    else:
        model, head = model_class_for(config).from_pretrained(model_id), "none"
    return CompressionSubject(model.eval(), extractor, head)
