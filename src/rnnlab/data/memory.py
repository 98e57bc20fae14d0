"""How much memory the largest padded batch needs, checked before training allocates it.

A padded batch costs its longest example's length times the batch size, so one long input
decides the memory of a whole run. Every task estimates its largest batch with one formula
(what the forward and backward keep alive per row and per step) and checks it here::

    need = padded_batch_bytes(rows=256, steps=250, width=100 + 2 * 32, hidden=128,
                              layers=1, directions=2, outputs=17)
    check_memory(need, "the largest padded batch (256 sentences of 250 words)",
                 "lower --batch or --max-len")       # MemoryError when need > available

The per-step figure is deliberately generous: a recurrent layer keeps its input, gates and
states for the backward pass (at most 4 gates, their activations, c, h and tanh(c): about
12 vectors of ``hidden``), and the output layer keeps its logits, softmax and gradient
(3 vectors of ``outputs``). The tests compare it with the peak that tracemalloc measures.
"""
from __future__ import annotations

import os

import numpy as np

from .. import backend

RECURRENT_VECTORS = 12   # per layer, direction and step: gates, activations, c, h, tanh(c), grads
OUTPUT_VECTORS = 3       # per output step: logits, softmax, its gradient


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation (MemAvailable of /proc/meminfo, else the
    free pages of os.sysconf), or None where neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def padded_batch_bytes(rows: int, steps: int, width: int, hidden: int, layers: int = 1, directions: int = 1,
                       outputs: int = 0, itemsize: int | None = None) -> int:
    """Estimate in bytes of one padded batch's forward and backward::

        rows * steps * (width                                  # the inputs of every step
                        + layers * directions * 12 * hidden    # gates and states, both passes
                        + 3 * outputs)                         # per-step logits (0: one output per row)

    ``itemsize``: bytes per number (default: the backend's float type's).
    """
    if itemsize is None:
        itemsize = np.dtype(backend.floatx()).itemsize
    per_step = width + layers * directions * RECURRENT_VECTORS * hidden + OUTPUT_VECTORS * outputs
    return int(rows) * int(steps) * int(per_step) * int(itemsize)


def check_memory(need: int, what: str, hint: str, available: int | None = None) -> int:
    """Raise MemoryError naming ``what`` and ``hint`` when ``need`` bytes exceed the memory
    available (``None``: read it now); returns ``need``."""
    available = available_memory() if available is None else available
    if available is not None and need > available:
        raise MemoryError(f"{what} needs about {need / 2**30:.1f} GiB of activations but "
                          f"{available / 2**30:.1f} GiB is available: {hint}")
    return need
