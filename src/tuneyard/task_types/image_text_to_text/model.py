"""Vision-language chat models (``AutoModelForImageTextToText``) and their processors.

A checkpoint trains here when transformers' image-text-to-text auto class maps its
``model_type`` (Idefics3 / SmolVLM first) and its processor's chat template takes image
parts; a text-only decoder is refused with the task type it needs instead. The
processor is the model's "tokenizer" in every role: it renders the chat template, expands
each ``<image>`` into the image's tokens, and turns images into pixels.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuneyard.errors import ModelError
from tuneyard.models.loading import transformers_errors_only

if TYPE_CHECKING:
    import torch

    from tuneyard.data.tasks import TaskSpec
    from tuneyard.models.checkpoint import StartingCheckpoint
    from tuneyard.task_types.base import LoadSettings

MAPPING = "MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES"
# The towers of an Idefics3-style model (SmolVLM): what LoRA adapts and what --train-connector trains.
TEXT_TOWER, VISION_TOWER, CONNECTOR = "model.text_model", "model.vision_model", "model.connector"


def is_image_text_model(model_type: str) -> bool:
    """Whether transformers' image-text-to-text auto class builds a ``model_type`` model."""
    import transformers.models.auto.modeling_auto as auto

    return model_type in getattr(auto, MAPPING)


def check_image_text_model(model_type: str, arch: str, source: str) -> None:
    """Refuse a checkpoint that reads no images (a text-only decoder, an encoder)."""
    if not is_image_text_model(model_type):
        raise ModelError(
            f"{source} is a {arch} model, which reads text only; image rows need a vision-language model.",
            "Start from one AutoModelForImageTextToText loads (HuggingFaceTB/SmolVLM-256M-Instruct, an "
            "Idefics3 model), or train the text alone with --task-type causal_lm on rows without images.",
        )


def with_chat_template(processor: Any, spec: TaskSpec | None, source: str) -> Any:
    """``processor`` with the task's chat template (if given) or its own; refuse one that has neither."""
    if spec is not None and spec.chat_template:
        processor.chat_template = spec.chat_template
    if not getattr(processor, "chat_template", None):
        raise ModelError(
            f"the processor of {source} has no chat template, so image-chat rows cannot be formatted.",
            "Pass --chat-template FILE (a Jinja template that renders {'type': 'image'} parts), or start "
            "from an instruct model.",
        )
    return processor


def load_processor(source: str | Path) -> Any:
    """The checkpoint's processor (image processor + tokenizer); the tokenizer pads."""
    from transformers import AutoProcessor

    try:
        processor = AutoProcessor.from_pretrained(str(source))
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"checkpoint {source} has no loadable processor: {exc}",
            "Save the processor next to the model (processor.save_pretrained(folder)).",
        ) from exc
    if not hasattr(processor, "image_processor"):
        raise ModelError(
            f"the processor of {source} ({type(processor).__name__}) takes no images.",
            "Start from a vision-language checkpoint whose processor has an image processor.",
        )
    tokenizer = processor.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return processor


def load_model(checkpoint: StartingCheckpoint, seed: int, settings: LoadSettings) -> Any:
    """The checkpoint as ``AutoModelForImageTextToText``, its weights as ``settings`` say."""
    from transformers import AutoModelForImageTextToText, set_seed

    check_image_text_model(checkpoint.model_type, checkpoint.arch, checkpoint.source)
    set_seed(seed)
    with transformers_errors_only():
        return AutoModelForImageTextToText.from_pretrained(checkpoint.source, **settings.pretrained_kwargs())


def load_adapter_base(base: Path | str) -> Any:
    """The base model an image-text-to-text LoRA adapter goes onto."""
    import torch
    from transformers import AutoModelForImageTextToText

    with transformers_errors_only():
        return AutoModelForImageTextToText.from_pretrained(base, dtype=torch.float32)


def load_for_eval(folder: Path, device: torch.device) -> tuple[Any, Any]:
    """Model (on ``device``) and processor of a vision-language folder (a LoRA run's adapter on its base)."""
    from tuneyard.models.loading import load_config
    from tuneyard.task_types.model_loading import load

    config = load_config(str(folder))
    check_image_text_model(config.model_type, type(config).__name__.removesuffix("Config"), str(folder))
    return load(folder).to(device), load_processor(folder)


def lora_towers(model: Any) -> tuple[str, str, str]:
    """The text tower, vision tower and connector of ``model``; refuses a layout tuneyard does not know."""
    missing = [name for name in (TEXT_TOWER, VISION_TOWER, CONNECTOR) if not _has_module(model, name)]
    if missing:
        raise ModelError(
            f"{type(model).__name__} has no {missing[0]}: tuneyard knows the Idefics3 / SmolVLM layout "
            "(model.text_model, model.vision_model, model.connector).",
            "Train it with --strategy full, or open an issue naming the model.",
        )
    return TEXT_TOWER, VISION_TOWER, CONNECTOR


def _has_module(model: Any, name: str) -> bool:
    try:
        model.get_submodule(name)
    except AttributeError:
        return False
    return True
