"""``image_text_to_text``'s own fine-tuning options (``finetune --help``: "Task type image_text_to_text").

Recorded in the run's manifest (``config.task_options``), so eval, generate and export
validation prepare images exactly as training did.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from tuneyard.config import StrictModel

# The names of tuneyard.task_types.image_text_to_text.preprocess.PREPROCESSES (a test keeps them equal).
ImagePreprocess = Literal["processor", "llamacpp"]


class ImageTextOptions(StrictModel):
    """How images become pixels, and which parts of a vision-language model LoRA trains."""

    image_preprocess: ImagePreprocess = Field(
        default="processor",
        description="How images become pixels, for training and every later verb: 'processor' (the "
        "model's own processor) or 'llamacpp' (what the pinned llama.cpp does, for a model deployed there).",
    )
    max_answer_tokens: int | None = Field(
        default=None,
        gt=0,
        description="The longest answer the deployment generates (seed 003's app: 32): finetune refuses "
        "longer answers, and eval and generate of the model stop there.",
    )
    lora_vision_layers: str | None = Field(
        default=None,
        description="LoRA: also adapt these vision-tower blocks ('0,1', '0-3' or 'all'); default: the "
        "text tower only (--lora-layers chooses its blocks).",
    )
    train_connector: bool = Field(
        default=False,
        description="LoRA: train the vision-to-text connector in full (a new vision tower needs it).",
    )
