"""The few cross-process facts a run needs under torchrun / accelerate.

Only the main process (global rank 0) touches the yard: it reserves the run folder,
writes manifests, logs and best/last, and updates the index. The others train and
learn the run folder's path from rank 0.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any


def world_size() -> int:
    """Number of training processes (1 without torchrun / accelerate launch)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def has_gpu() -> bool:
    """Whether a CUDA GPU is visible (pinned host memory only helps when batches go to one)."""
    import torch

    return torch.cuda.is_available()


def gpu_has_bfloat16() -> bool:
    """Whether the CUDA GPU computes in bfloat16 natively (Ampere or newer), not by emulation."""
    import torch

    return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)


def cpu_processes() -> bool:
    """True for a multi-process run without GPUs: accelerate then needs ``cpu=True`` (gloo)."""
    if world_size() <= 1:
        return False
    import torch

    return not torch.cuda.is_available()


def init_process_group() -> None:
    """Join the process group early (before the Trainer does) so ranks can agree on paths."""
    if world_size() > 1:
        from accelerate import PartialState

        PartialState(cpu=cpu_processes())


def is_main_process() -> bool:
    """True on global rank 0, or when not distributed."""
    return int(os.environ.get("RANK", "0")) == 0


def share_from_main(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (identity when not distributed)."""
    if world_size() <= 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if world_size() > 1:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.barrier()


def any_rank(flag: bool, device: Any = None) -> bool:
    """True when ``flag`` is true on at least one rank (so all ranks act together)."""
    if world_size() <= 1:
        return flag
    import torch
    import torch.distributed as dist

    value = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item() > 0)


@contextlib.contextmanager
def main_process_first() -> Any:
    """Let rank 0 fill the datasets cache before the other ranks read it."""
    if world_size() <= 1:
        yield
        return
    from accelerate import PartialState

    with PartialState(cpu=cpu_processes()).main_process_first():
        yield
