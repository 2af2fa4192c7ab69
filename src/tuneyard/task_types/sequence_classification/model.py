"""Sequence classifiers for training, evaluation and compression.

Training: a bare encoder (all-MiniLM-L6-v2 is a ``BertModel``) gets a fresh head; a
classifier whose head has a different number of labels is refused unless
``--reset-head``; a compressed model keeps its low-rank layers and gets the same
treatment. Evaluation needs a trained head. Compression loads a classifier as one, and
a bare encoder under a head sized for the calibration task (or as itself without one).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import CompressionError, ModelError, TrainingError
from tuneyard.models.loading import ensure_padding_token, tokenizer_source
from tuneyard.task_types.base import CompressionSubject, LoadSettings

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tuneyard.data.tasks import TaskSpec
    from tuneyard.models.checkpoint import StartingCheckpoint

CLASSIFIER_SUFFIX = "ForSequenceClassification"
ADAPTER_WEIGHTS = ("adapter_model.safetensors",)
# The output layer of the heads of BERT-like (classifier), RoBERTa-like (out_proj) and decoder (score) models.
HEAD_WEIGHT_SUFFIXES = ("classifier.weight", "classifier.out_proj.weight", "score.weight")


def label_options(spec: TaskSpec) -> dict[str, Any]:
    """Config fields that size the head and name its labels (saved with the model)."""
    if spec.problem == "regression":
        return {"num_labels": 1, "problem_type": "regression"}
    id2label = dict(enumerate(spec.label_names))
    return {
        "num_labels": spec.num_labels,
        "id2label": id2label,
        "label2id": {label: index for index, label in id2label.items()},
        "problem_type": "single_label_classification",
    }


def has_classifier_head(config: Any) -> bool:
    """True when the checkpoint was saved as a sequence classifier (its head has trained weights)."""
    return any(str(name).endswith(CLASSIFIER_SUFFIX) for name in getattr(config, "architectures", None) or ())


def check_head_size(parent: StartingCheckpoint, config: Any, spec: TaskSpec, reset_head: bool) -> None:
    """Refuse a classifier head of another size, unless the user asked for a new head."""
    wanted = 1 if spec.problem == "regression" else spec.num_labels
    if has_classifier_head(config) and config.num_labels != wanted and not reset_head:
        raise TrainingError(
            f"checkpoint {parent.source} has a classifier head with {config.num_labels} labels, "
            f"but task {spec.name!r} has {wanted} ({', '.join(spec.label_names) or 'regression'}).",
            "Pass --reset-head to replace the head with a fresh one of the right size, "
            "or choose the task the checkpoint was trained for.",
        )


def load_tokenizer(parent: StartingCheckpoint) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer, with a pad token."""
    from transformers import AutoTokenizer

    source = tokenizer_source(Path(parent.source)) if parent.local else parent.source
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
    except (OSError, ValueError, TypeError) as exc:  # TypeError: a tokenizer class without its vocab file
        raise ModelError(
            f"checkpoint {parent.source} has no loadable tokenizer: {exc}",
            "Save the tokenizer next to the model (tokenizer.save_pretrained(folder)); a model without "
            "one (a speech encoder) classifies other rows: give them, with --task-type.",
        ) from exc
    ensure_padding_token(tokenizer)
    return tokenizer


def load_plain_classifier(
    parent: StartingCheckpoint, spec: TaskSpec, reset_head: bool, settings: LoadSettings
) -> PreTrainedModel:
    """A HF model folder or hub id as ``AutoModelForSequenceClassification``, weights as ``settings`` say."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(parent.source)
    except (OSError, ValueError) as exc:
        raise ModelError(f"checkpoint {parent.source} has no usable config.json: {exc}") from exc
    check_head_size(parent, config, spec, reset_head)
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            parent.source,
            ignore_mismatched_sizes=reset_head,
            **label_options(spec),
            **settings.pretrained_kwargs(),
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"checkpoint {parent.source} is not a loadable model: {exc}") from exc


def load_compressed_classifier(
    parent: StartingCheckpoint, spec: TaskSpec, reset_head: bool
) -> PreTrainedModel:
    """A tuneyard compressed folder as a classifier that keeps its low-rank layers.

    A compressed bare encoder (or a head of the wrong size with ``--reset-head``) is
    put under a freshly built classifier of the same family: the classifier's base
    model is swapped for the compressed one.
    """
    from pathlib import Path

    from transformers import AutoModelForSequenceClassification

    from tuneyard.models.compressed_folder import load_compressed_folder

    loaded = load_compressed_folder(Path(parent.source)).train()
    check_head_size(parent, loaded.config, spec, reset_head)
    if type(loaded).__name__.endswith(CLASSIFIER_SUFFIX) and not reset_head:
        loaded.config.update(label_options(spec))
        return loaded
    config = loaded.config
    config.update(label_options(spec))
    classifier = AutoModelForSequenceClassification.from_config(config)
    prefix = classifier.base_model_prefix
    base = getattr(loaded, prefix, loaded)
    if type(base) is not type(getattr(classifier, prefix)):
        raise ModelError(
            f"compressed checkpoint {parent.source} holds a {type(loaded).__name__}, "
            f"which tuneyard cannot put under {type(classifier).__name__}.",
        )
    setattr(classifier, prefix, base)
    return classifier


def load_model(
    parent: StartingCheckpoint, spec: TaskSpec, reset_head: bool, seed: int, settings: LoadSettings
) -> PreTrainedModel:
    """The checkpoint as a sequence classifier for ``spec`` (a new head is seeded), in ``settings.dtype``."""
    from transformers import set_seed

    from tuneyard.models.dtypes import torch_dtype

    set_seed(seed)
    if parent.compressed:
        return load_compressed_classifier(parent, spec, reset_head).to(torch_dtype(settings.dtype))
    return load_plain_classifier(parent, spec, reset_head, settings)


def load_for_eval(folder: Path, device: torch.device) -> tuple[Any, Any]:
    """Model (on ``device``) and tokenizer of a model folder; refuses headless encoders."""
    from tuneyard.models.loading import load_tokenizer
    from tuneyard.task_types.model_loading import load

    model = load(folder)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if not type(inner).__name__.endswith(CLASSIFIER_SUFFIX):
        raise ModelError(
            f"{folder} holds a {type(inner).__name__}, which has no classification head to evaluate.",
            "Evaluate a fine-tuned classifier (tuneyard finetune ... produces one).",
        )
    return model.to(device), load_tokenizer(folder)


def load_for_compression(model_id: str, spec: TaskSpec | None, seed: int) -> CompressionSubject:
    """The model to compress, its tokenizer, and the state of its head.

    A classifier folder loads as a classifier. A bare encoder (e.g. all-MiniLM-L6-v2)
    loads as ``...ForSequenceClassification`` with a head sized for the task when one is
    given (head ``untrained``: seeded random init), else as its own class (head ``none``).
    """
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from tuneyard.models.loading import load_config, model_class_for, transformers_errors_only

    config = load_config(model_id)
    labels = spec.num_labels if spec is not None else 0
    tokenizer = AutoTokenizer.from_pretrained(model_id)
    ensure_padding_token(tokenizer)
    if has_classifier_head(config):
        if labels and labels != config.num_labels:
            raise CompressionError(
                f"{model_id} classifies into {config.num_labels} labels, the task data has {labels}.",
                "Calibrate with data of the model's own task, or compress the base encoder.",
            )
        model = AutoModelForSequenceClassification.from_pretrained(model_id)
        head = "trained"
    elif labels and spec is not None:
        torch.manual_seed(seed)
        # transformers warns that the head is newly initialised; compress says it in its notes.
        with transformers_errors_only():
            model = AutoModelForSequenceClassification.from_pretrained(model_id, **label_options(spec))
        head = "untrained"
    else:
        model = model_class_for(config).from_pretrained(model_id)
        head = "none"
    if model.config.pad_token_id is None and tokenizer.pad_token_id is not None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return CompressionSubject(model.eval(), tokenizer, head)


def adapter_head_size(folder: Path) -> tuple[int | None, dict[int, str] | None]:
    """Head size of a classifier adapter: from its config.json, else its saved head weights."""
    config_file = folder / "config.json"
    if config_file.is_file():
        id2label = json.loads(config_file.read_text()).get("id2label")
        if id2label:
            return len(id2label), {int(key): value for key, value in id2label.items()}
    from safetensors import safe_open

    for name in ADAPTER_WEIGHTS:
        if not (folder / name).is_file():
            continue
        with safe_open(str(folder / name), framework="pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (not a dict)
                if key.endswith(HEAD_WEIGHT_SUFFIXES):
                    return int(handle.get_slice(key).get_shape()[0]), None
    return None, None


def load_adapter_base(base: Path | str, adapter: Path) -> Any:
    """The base of a classifier adapter as a classifier with a head of the adapter's size.

    The base has no trained head of that size; the adapter's saved head replaces it.
    """
    from transformers import AutoModelForSequenceClassification

    from tuneyard.models.loading import transformers_errors_only

    num_labels, id2label = adapter_head_size(adapter)
    options: dict[str, Any] = {}
    if num_labels is not None:  # a base with a head of another size keeps its body only
        options |= {"num_labels": num_labels, "ignore_mismatched_sizes": True}
    if id2label is not None:
        options["id2label"] = id2label
        options["label2id"] = {label: index for index, label in id2label.items()}
    with transformers_errors_only():
        return AutoModelForSequenceClassification.from_pretrained(base, **options)
