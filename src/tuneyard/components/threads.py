"""How many threads llama.cpp computes on when the user does not say: torch's count in this process.

One rule for every place tuneyard runs llama.cpp (validating an export in-process, serving
a GGUF for ``eval --backend server``), so a grid cell or a test worker limited to its share
of the cores keeps llama.cpp there too.
"""

from __future__ import annotations


def default_threads() -> int:
    """As many threads as torch computes on in this process: every physical core, or ``OMP_NUM_THREADS``
    (or a grid cell's share).

    llama.cpp's threads wait for each other at every operation by spinning: more threads than the
    cores left free (another process's, or two test workers' on two cores) make a 135M model's
    8-token answer take seconds of CPU instead of a fraction of one.
    """
    import torch

    return torch.get_num_threads()
