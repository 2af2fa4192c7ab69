"""``token_classification``: a tag for every word (``tokens`` and ``tags`` list columns).

Written against tuneyard's task-type interface only, the way a third-party package
would: the roles of :mod:`tuneyard.task_types.base`, the shared classifier parts of
:mod:`tuneyard.task_types.classifier`, transformers' ``AutoModelForTokenClassification``
and ``DataCollatorForTokenClassification``. Each word's tag is learned and scored at
its first sub-word token; the other sub-words are ignored (label -100), as the
transformers token-classification examples do, unless ``--label-all-subwords`` (the
task type's own option, offered by ``tuneyard finetune`` in a panel of its own).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field

from tuneyard.components.throughput import Throughput, peak_memory
from tuneyard.config import StrictModel
from tuneyard.data.loading import dataset_name, read_split_files
from tuneyard.data.tasks import TaskSpec
from tuneyard.errors import DataError
from tuneyard.task_types.base import (
    DataRole,
    EvaluationRole,
    LoadSettings,
    TaskType,
    TrainingRole,
    TrainingSettings,
)
from tuneyard.task_types.classifier import ClassifierModel

NAME = "token_classification"
TOKENS, TAGS = "tokens", "tags"
IGNORED = -100


class WordTagOptions(StrictModel):
    """This task type's own fine-tuning options."""

    label_all_subwords: bool = Field(
        default=False, description="Learn each word's tag at every one of its sub-words, not only the first."
    )


class WordTagData(DataRole):
    """A ``tokens`` column (a list of words) and a ``tags`` column (one tag per word)."""

    def recognize(self, column_names: list[str], columns: Any) -> int:
        return 3 if TOKENS in column_names and TAGS in column_names else 0

    def load_folder(
        self, folder: Path, columns: Any, require_labels: bool
    ) -> tuple[TaskSpec, dict[str, Any]]:
        splits, files = read_split_files(folder)
        for split, rows in splits.items():
            if TOKENS not in rows.column_names or TAGS not in rows.column_names:
                raise DataError(f"{files[split]} has no {TOKENS!r} and {TAGS!r} columns.")
        tags = sorted({tag for rows in splits.values() for row_tags in rows[TAGS] for tag in row_tags})
        spec = TaskSpec(name=str(dataset_name(None, folder)), task_type=NAME, label_names=tuple(tags))
        return spec, splits


def encode(rows: Any, tokenizer: Any, spec: TaskSpec, max_length: int, every_subword: bool = False) -> Any:
    """Sub-word ids, with each word's tag id at its first sub-word (or all of them) and -100 elsewhere."""
    ids = {tag: index for index, tag in enumerate(spec.label_names)}

    def encode_batch(batch: dict[str, list[Any]]) -> dict[str, Any]:
        encoded = tokenizer(batch[TOKENS], is_split_into_words=True, truncation=True, max_length=max_length)
        encoded["labels"] = []
        for index, tags in enumerate(batch[TAGS]):
            words, labels, previous = encoded.word_ids(index), [], None
            for word in words:
                repeated = word == previous and not every_subword
                labels.append(IGNORED if word is None or repeated else ids[tags[word]])
                previous = word
            encoded["labels"].append(labels)
        return encoded

    return rows.map(encode_batch, batched=True, remove_columns=rows.column_names)


class TokenClassifierModel(ClassifierModel):
    """``AutoModelForTokenClassification`` over any encoder transformers maps to one."""

    architecture_mapping = "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES"
    peft_task_type = "TOKEN_CLS"

    def load_tokenizer(self, checkpoint: Any, spec: TaskSpec) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(checkpoint.source)

    def load(
        self,
        checkpoint: Any,
        spec: TaskSpec,
        reset_head: bool,
        seed: int,
        settings: LoadSettings = LoadSettings(),
    ) -> Any:
        from transformers import AutoModelForTokenClassification, set_seed

        set_seed(seed)
        return AutoModelForTokenClassification.from_pretrained(
            checkpoint.source,
            **settings.pretrained_kwargs(),
            num_labels=len(spec.label_names),
            id2label=dict(enumerate(spec.label_names)),
            label2id={tag: index for index, tag in enumerate(spec.label_names)},
            ignore_mismatched_sizes=True,
        )

    def load_for_eval(self, folder: Path, device: Any) -> tuple[Any, Any]:
        import tuneyard

        return tuneyard.load(folder).to(device), tuneyard.load_tokenizer(folder)

    def load_adapter_base(self, base: Path | str, adapter: Path) -> Any:
        from transformers import AutoModelForTokenClassification

        return AutoModelForTokenClassification.from_pretrained(base)

    def probe_inputs(self, tokenizer: Any) -> dict[str, Any]:
        return dict(tokenizer("Debian packages name their sections", return_tensors="pt"))


def token_accuracy(logits: Any, labels: Any) -> float:
    """The share of tagged words (labels other than -100) whose best-scoring tag is right."""
    import numpy as np

    predicted, gold = np.argmax(logits, axis=-1), np.asarray(labels)
    counted = gold != IGNORED
    return float((predicted[counted] == gold[counted]).mean())


class WordTagTraining(TrainingRole):
    """transformers' Trainer with its token-classification collator; accuracy over tagged words."""

    def build_trainer(
        self, model, arguments, data, tokenizer, settings: TrainingSettings, callbacks, teacher=None
    ):  # type: ignore[no-untyped-def]
        from transformers import DataCollatorForTokenClassification, Trainer

        every_subword = settings.task_options.label_all_subwords

        def metrics(prediction: Any) -> dict[str, float]:
            return {"accuracy": token_accuracy(prediction.predictions, prediction.label_ids)}

        return Trainer(
            model=model,
            args=arguments,
            train_dataset=encode(
                data.split("train"), tokenizer, data.spec, settings.max_length, every_subword
            ),
            eval_dataset=encode(data.split("validation"), tokenizer, data.spec, settings.max_length),
            data_collator=DataCollatorForTokenClassification(tokenizer),
            processing_class=tokenizer,
            compute_metrics=metrics,
            callbacks=callbacks,
        )

    def metric_names(self, spec: TaskSpec) -> list[str]:
        return ["loss", "accuracy"]


@dataclass
class WordTagResult:
    """Accuracy over the tagged words of one split, and how fast it ran."""

    metrics: dict[str, float]
    throughput: Throughput
    main_metric: str = "accuracy"

    def write_files(self, folder: Path, model: str) -> list[str]:
        document = {"model": model, "metrics": self.metrics, "throughput": self.throughput.numbers()}
        (folder / "metrics.json").write_text(json.dumps(document, indent=2) + "\n")
        return ["metrics.json"]


class WordTagEvaluation(EvaluationRole):
    """Tag every word of the split in batches; accuracy over words."""

    def evaluate(  # type: ignore[no-untyped-def]
        self, model, tokenizer, dataset, spec, split, batch_size, max_length, progress=None, answers=None,
        task_options=None,
    ):  # fmt: skip
        import torch
        from transformers import DataCollatorForTokenClassification

        encoded = encode(dataset, tokenizer, spec, max_length or 128)
        collate = DataCollatorForTokenClassification(tokenizer)
        device = next(model.parameters()).device
        correct = tagged = 0
        started = time.perf_counter()
        for start in range(0, len(encoded), batch_size):
            batch = collate([encoded[index] for index in range(start, min(start + batch_size, len(encoded)))])
            labels = batch.pop("labels")
            with torch.inference_mode():
                logits = model(**{key: value.to(device) for key, value in batch.items()}).logits.cpu()
            counted = labels != IGNORED
            correct += int((logits.argmax(-1)[counted] == labels[counted]).sum())
            tagged += int(counted.sum())
            if progress:
                progress(len(labels))
        memory, measure = peak_memory(device)
        speed = Throughput(
            len(encoded),
            time.perf_counter() - started,
            batch_size,
            max_length or 128,
            str(device),
            memory,
            measure,
        )
        return WordTagResult({"accuracy": correct / max(tagged, 1), "words": tagged}, speed)


TASK_TYPE = TaskType(
    name=NAME,
    summary="a tag per word (tokens and tags columns): a plugin's task type",
    data=WordTagData(),
    model=TokenClassifierModel(),
    training=WordTagTraining(),
    evaluation=WordTagEvaluation(),
    options=WordTagOptions,
)
