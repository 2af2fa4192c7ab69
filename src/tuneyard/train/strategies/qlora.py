"""``qlora``: LoRA adapters over a base whose linear layers load in 4-bit NF4 (QLoRA).

The base's weights are quantized as they load, by bitsandbytes (:func:`quantization_config`,
which the recipe hands to the task type's load): NF4 with double quantization, computing
in bfloat16, as the QLoRA paper does, so the frozen base takes about a quarter of its
bfloat16 memory. PEFT's ``prepare_model_for_kbit_training`` readies the quantized model
(the layers that stay unquantized in float32, everything frozen), then the adapters go
on exactly as ``--strategy lora`` puts them. bitsandbytes' 4-bit kernels need a CUDA
GPU: :func:`check_machine` refuses any other machine when the run is planned, before
anything loads or is written. ``tuneyard merge`` folds the adapters into the base loaded
unquantized, so a QLoRA run merges and exports like a LoRA run.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from tuneyard.errors import TrainingError
from tuneyard.train.strategies import lora

if TYPE_CHECKING:
    from torch import nn

    from tuneyard.models.layout import ModelLayout
    from tuneyard.task_types.base import TaskType
    from tuneyard.train.options import FinetuneOptions

NAME = "qlora"
DEFAULT_LEARNING_RATE = lora.DEFAULT_LEARNING_RATE
INSTALL = "tuneyard's [qlora] extra: pip install -e '.[qlora]' in its checkout"


def check_machine() -> None:
    """Refuse a machine bitsandbytes' 4-bit training cannot run on, naming what is missing and the fix."""
    import torch

    missing = []
    if not torch.cuda.is_available():
        missing.append("no CUDA GPU")
    elif not torch.cuda.is_bf16_supported(including_emulation=False):
        missing.append("a GPU without bfloat16 (QLoRA computes in it; NVIDIA Ampere or newer has it)")
    if importlib.util.find_spec("bitsandbytes") is None:
        missing.append("no bitsandbytes installed")
    if missing:
        raise TrainingError(
            f"--strategy qlora needs a CUDA GPU with bitsandbytes (4-bit NF4 weights); this machine has "
            f"{' and '.join(missing)}.",
            f"Use --strategy lora (with --dtype bfloat16 its base takes half the memory), or on a CUDA GPU "
            f"install bitsandbytes, {INSTALL}.",
        )


def quantization_config() -> Any:
    """The base's 4-bit NF4 quantization (double-quantized constants, bfloat16 compute)."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=torch.bfloat16,
        bnb_4bit_use_double_quant=True,
    )


def apply(model: nn.Module, options: FinetuneOptions, layout: ModelLayout, task_type: TaskType) -> nn.Module:
    """Ready the quantized ``model`` for training, then put LoRA adapters on it as ``lora`` does."""
    from peft import prepare_model_for_kbit_training

    # Checkpointing is the Trainer's (--gradient-checkpointing), for every strategy alike.
    prepared = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    return lora.apply(prepared, options, layout, task_type)
