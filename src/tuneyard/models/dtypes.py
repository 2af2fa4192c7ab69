"""The dtype a model's weights load in: ``--dtype auto|float32|bfloat16|float16``.

``auto`` is the checkpoint's own dtype (``config.json``'s ``dtype``, ``torch_dtype`` in
older files) where a CUDA GPU runs the model, and float32 on a CPU: a half-precision
checkpoint on a GPU then takes half the memory it would in float32, while CPU runs keep
the float32 numbers they always had (a CPU computes float32 at least as fast, and
float16 has no loss scaling there). A dtype is one of these names everywhere tuneyard
records it (the run's options, the manifest); :func:`torch_dtype` turns it into torch's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from tuneyard.errors import ConfigError

if TYPE_CHECKING:
    import torch

DtypeName = Literal["float32", "bfloat16", "float16"]
LoadDtype = Literal["auto", "float32", "bfloat16", "float16"]
DTYPES: tuple[DtypeName, ...] = ("float32", "bfloat16", "float16")
DEFAULT_DTYPE: DtypeName = "float32"  # what a checkpoint that names no dtype, and every CPU run, loads in


def torch_dtype(name: str) -> torch.dtype:
    """torch's dtype of a name in :data:`DTYPES`."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def dtype_name(value: object) -> DtypeName | None:
    """``"bfloat16"`` for ``torch.bfloat16`` or ``"bfloat16"``; None for anything else (unset, float64)."""
    text = str(value).removeprefix("torch.") if value is not None else ""
    return next((name for name in DTYPES if name == text), None)


def checkpoint_dtype(source: str | Path) -> DtypeName | None:
    """The dtype a checkpoint's ``config.json`` names (``dtype``, or ``torch_dtype``); None without one."""
    from tuneyard.models.loading import load_config

    config = load_config(source)
    return dtype_name(getattr(config, "dtype", None) or getattr(config, "torch_dtype", None))


def resolve_load_dtype(
    requested: LoadDtype, source: str | Path, on_gpu: bool, gpu_has_bf16: bool
) -> DtypeName:
    """The dtype ``--dtype requested`` loads ``source`` in; any value but ``auto`` as asked.

    ``auto`` is the checkpoint's own on a GPU and float32 on a CPU (see the module's
    docstring); a bfloat16 checkpoint on a GPU without bfloat16 kernels loads in float32,
    as every checkpoint did before ``--dtype``.
    """
    if requested != "auto":
        return requested
    if not on_gpu:
        return DEFAULT_DTYPE
    found = checkpoint_dtype(source) or DEFAULT_DTYPE
    return DEFAULT_DTYPE if found == "bfloat16" and not gpu_has_bf16 else found


def check_trainable_dtype(dtype: DtypeName, on_gpu: bool, gpu_has_bf16: bool, precision: str) -> None:
    """Refuse a dtype the training device cannot train in, naming the fix.

    float16 weights need a GPU (a CPU has no loss scaling for them; bfloat16 has float32's
    range and trains there), bfloat16 weights a GPU with bfloat16 kernels (Ampere or newer)
    when the run is on one, and ``--precision fp16``'s loss scaler float32 weights.
    """
    if dtype == "float16" and precision == "fp16":
        raise ConfigError(
            "--precision fp16 scales the gradients of float32 weights; it cannot train weights loaded "
            "in float16 (--dtype float16).",
            "Use --dtype float32 with --precision fp16, or --dtype bfloat16 (on a GPU with bfloat16).",
        )
    if dtype == "float16" and not on_gpu:
        raise ConfigError(
            "--dtype float16 cannot train on a CPU: float16 weights need a CUDA GPU's loss scaling.",
            "Use --dtype bfloat16 (trains on a CPU) or float32, or run on a CUDA GPU.",
        )
    if dtype == "bfloat16" and on_gpu and not gpu_has_bf16:
        raise ConfigError(
            "--dtype bfloat16 needs a GPU with bfloat16 support (NVIDIA Ampere or newer); this one has none.",
            "Use --dtype float32 with --precision fp16, or run on a GPU with bfloat16.",
        )
