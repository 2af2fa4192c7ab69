"""Shared parts of "a classifier over some input": one label (or number) per example.

A classifier's head is every top-level module beside its base model; its logits range
over its labels; LoRA saves the head whole. Sequence classification builds on these,
and so can a classifier of audio or images: it writes only its data, its inputs and
its model class.
"""

from __future__ import annotations

from typing import Any

from tuneyard.task_types.base import ModelRole


class ClassifierModel(ModelRole):
    """Model-role parts every ``...For{Input}Classification`` model shares."""

    peft_task_type = "SEQ_CLS"

    def head_modules(self, model: Any) -> list[str]:
        from tuneyard.components.heads import head_module_names

        return head_module_names(model)

    def output_space(self, model: Any) -> str:
        config = model.config
        return f"the labels {[str(config.id2label[index]) for index in range(config.num_labels)]}"
