"""What a run holds of the machine, for each row of ``training_log.csv``: CPU memory, GPU memory and use.

A run that grows out of memory or leaves the GPU idle shows it in its log, next to the
losses of the same steps (seed 003 watches both). Every row gets:

* ``cpu_rss_gib``: the process's resident memory now (``/proc/self/statm``; Linux);
* ``cpu_peak_rss_gib``: its high-water mark so far (``getrusage``'s ``ru_maxrss``);

and, when the Trainer runs on a CUDA device (torch's own counters, no extra package):

* ``gpu_memory_gib``: tensors allocated on it now (``torch.cuda.memory_allocated``);
* ``gpu_peak_memory_gib``: the most allocated since the previous row
  (``max_memory_allocated``, reset after each row so a spike between rows is kept);
* ``gpu_utilization_percent``: the share of the last sample period the GPU was busy
  (``torch.cuda.utilization``, which asks NVML: only with ``nvidia-ml-py`` installed).

The columns are the same in every row of one run, so the log stays one table.

Rows are written per evaluation; between them, :func:`step_usage` adds the memory now
(CPU and GPU) and the GPU's use to the Trainer's log at every logging step, so
TensorBoard, W&B and any other ``--report-to`` follow them step by step (the peaks in
the CSV rows cover the steps in between).
"""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path
from typing import Any

GIB = 2**30
STATM = Path("/proc/self/statm")


def _rounded(size_bytes: float) -> float:
    return round(size_bytes / GIB, 4)


def cpu_usage() -> dict[str, float]:
    """The process's resident memory now (where the OS says it cheaply) and at its peak, in GiB."""
    usage: dict[str, float] = {}
    resident = 0
    if STATM.is_file():
        resident = int(STATM.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        usage["cpu_rss_gib"] = _rounded(resident)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak if sys.platform == "darwin" else peak * 1024  # KiB on Linux
    # The kernel updates ru_maxrss lazily: a page or two behind what statm counts now.
    usage["cpu_peak_rss_gib"] = _rounded(max(peak, resident))
    return usage


def _on_cuda(device: Any) -> bool:
    import torch

    return getattr(device, "type", None) == "cuda" and torch.cuda.is_available()


def gpu_now(device: Any) -> dict[str, float]:
    """Memory allocated on ``device`` now and its utilisation; empty off CUDA. Resets nothing."""
    import torch

    if not _on_cuda(device):
        return {}
    usage = {"gpu_memory_gib": _rounded(torch.cuda.memory_allocated(device))}
    try:
        usage["gpu_utilization_percent"] = float(torch.cuda.utilization(device))
    except (ModuleNotFoundError, RuntimeError):  # no NVML binding installed, or no NVML driver library
        pass
    return usage


def gpu_usage(device: Any) -> dict[str, float]:
    """:func:`gpu_now` and the peak allocated since the last call (the peak counter is reset)."""
    import torch

    if not _on_cuda(device):
        return {}
    usage = gpu_now(device) | {"gpu_peak_memory_gib": _rounded(torch.cuda.max_memory_allocated(device))}
    torch.cuda.reset_peak_memory_stats(device)
    return usage


def resource_usage(device: Any) -> dict[str, float]:
    """The columns this module's docstring lists, for a Trainer running on ``device``."""
    return cpu_usage() | gpu_usage(device)


def step_usage(device: Any) -> dict[str, float]:
    """What a logging step adds to the Trainer's log: memory now (CPU and GPU) and GPU use."""
    return cpu_usage() | gpu_now(device)
