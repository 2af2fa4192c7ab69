"""Sequence classification (single texts and sentence pairs; regression for STS-B).

A task type is one module with the same small interface, used by the recipe:
``load_tokenizer``, ``load_model``, ``encode``, ``collator``, ``compute_metrics`` and
``metric_names``. Audio classification or causal-LM tuning add a sibling module.

Loading: a bare encoder (all-MiniLM-L6-v2 is a ``BertModel``) gets a fresh head; a classifier
whose head has a different number of labels is refused unless ``--reset-head``; a
compressed model keeps its low-rank layers and gets the same treatment.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tuneyard.data.tokenize import ensure_padding_token
from tuneyard.errors import ModelError, TrainingError

if TYPE_CHECKING:
    from collections.abc import Callable

    from datasets import DatasetDict
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from tuneyard.data.loading import TaskData
    from tuneyard.data.tasks import TaskSpec
    from tuneyard.train.parent import ParentModel

CLASSIFIER_SUFFIX = "ForSequenceClassification"


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


def check_head_size(parent: ParentModel, config: Any, spec: TaskSpec, reset_head: bool) -> None:
    """Refuse a classifier head of another size, unless the user asked for a new head."""
    wanted = 1 if spec.problem == "regression" else spec.num_labels
    if has_classifier_head(config) and config.num_labels != wanted and not reset_head:
        raise TrainingError(
            f"checkpoint {parent.source} has a classifier head with {config.num_labels} labels, "
            f"but task {spec.name!r} has {wanted} ({', '.join(spec.label_names) or 'regression'}).",
            "Pass --reset-head to replace the head with a fresh one of the right size, "
            "or choose the task the checkpoint was trained for.",
        )


def load_tokenizer(parent: ParentModel) -> PreTrainedTokenizerBase:
    """The checkpoint's tokenizer, with a pad token."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(parent.source)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"checkpoint {parent.source} has no loadable tokenizer: {exc}",
            "Save the tokenizer next to the model (tokenizer.save_pretrained(folder)).",
        ) from exc
    ensure_padding_token(tokenizer)
    return tokenizer


def load_plain_classifier(parent: ParentModel, spec: TaskSpec, reset_head: bool) -> PreTrainedModel:
    """A HF model folder or hub id as ``AutoModelForSequenceClassification``."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    try:
        config = AutoConfig.from_pretrained(parent.source)
    except (OSError, ValueError) as exc:
        raise ModelError(f"checkpoint {parent.source} has no usable config.json: {exc}") from exc
    check_head_size(parent, config, spec, reset_head)
    try:
        return AutoModelForSequenceClassification.from_pretrained(
            parent.source, ignore_mismatched_sizes=reset_head, **label_options(spec)
        )
    except (OSError, ValueError) as exc:
        raise ModelError(f"checkpoint {parent.source} is not a loadable model: {exc}") from exc


def load_compressed_classifier(parent: ParentModel, spec: TaskSpec, reset_head: bool) -> PreTrainedModel:
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


def load_model(parent: ParentModel, spec: TaskSpec, reset_head: bool, seed: int) -> PreTrainedModel:
    """The checkpoint as a sequence classifier for ``spec``; a new head is seeded."""
    from transformers import set_seed

    set_seed(seed)
    if parent.compressed:
        return load_compressed_classifier(parent, spec, reset_head)
    return load_plain_classifier(parent, spec, reset_head)


def encode(data: TaskData, tokenizer: PreTrainedTokenizerBase, max_length: int) -> DatasetDict:
    """``train`` and ``validation`` as model inputs with ``labels``."""
    from tuneyard.data.tokenize import tokenize_task

    return tokenize_task(data, tokenizer, max_length)


def collator(tokenizer: PreTrainedTokenizerBase) -> Any:
    """Pads each batch to its longest row."""
    from transformers import DataCollatorWithPadding

    return DataCollatorWithPadding(tokenizer)


def compute_metrics(spec: TaskSpec) -> Callable[[Any], dict[str, float]]:
    """The Trainer's ``compute_metrics``: the same metrics ``tuneyard eval`` reports."""
    from tuneyard.evaluate.metrics import trainer_metrics

    return trainer_metrics(spec)


def metric_names(spec: TaskSpec) -> list[str]:
    """Metrics an evaluation reports for ``spec`` (what ``--metric-for-best`` may name)."""
    from tuneyard.evaluate.metrics import classification_metrics

    if spec.problem == "regression":
        sample: tuple[list[float], list[float]] = ([0.0, 1.0, 0.5], [0.1, 0.9, 0.4])
    else:
        sample = ([0, 1, 0], [0, 1, 1])
    return ["loss", *classification_metrics(sample[0], sample[1], spec)]
