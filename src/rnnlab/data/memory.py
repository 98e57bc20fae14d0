"""How much memory the largest padded batch needs, checked before training allocates it.

A padded batch costs its longest example's length times the batch size, so one long input
decides the memory of a whole run. Every task estimates its largest batch with one formula
(what the forward and backward keep alive per row and per step) and checks it here::

    need = padded_batch_bytes(rows=256, steps=250, width=100 + 2 * 32, hidden=128,
                              layers=1, directions=2, outputs=17)
    check_memory(need, "the largest padded batch (256 sentences of 250 words)",
                 "lower --batch or --max-len")       # MemoryError when need > available

Prediction (``rnnlab predict``, ``translate``, ``eval``) has no batch size to lower: it cuts
its inputs into batches of similar length that each fit ``PREDICTION_BUDGET``
(``budget_batches``, from the same per-step figure), so any number of inputs of any length
(capped as training caps them) runs in bounded memory::

    per_step = padded_batch_bytes(1, 1, width, hidden, layers, directions)
    for rows in budget_batches(lengths, per_step, "one sentence", "split long lines"):
        ...                                  # MemoryError first when one input alone is too large

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
PREDICTION_BUDGET = 256 * 2**20   # bytes of activations one prediction batch may take
PREDICTION_ROWS = 256             # and at most this many inputs


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


def budget_batches(lengths, per_step: int, what: str, hint: str, budget: int = PREDICTION_BUDGET,
                   max_rows: int = PREDICTION_ROWS, available: int | None = None) -> list[np.ndarray]:
    """Indices of the inputs of ``lengths`` in batches of similar length (shortest first), each
    padded batch (rows x its longest x ``per_step`` bytes) within ``budget`` and ``max_rows``;
    an input that alone exceeds the budget is a batch of its own. Before any batch: a MemoryError
    (``check_memory``, naming ``what``, the longest input, and ``hint``) when that longest input
    alone needs more than the memory available."""
    lengths = np.asarray(lengths, dtype=np.int64)
    order = np.argsort(lengths, kind="stable")
    if order.size:
        longest = int(lengths[order[-1]])
        check_memory(longest * int(per_step), f"{what} of {longest} steps", hint, available)
    batches, start = [], 0
    for end in range(1, order.size + 1):
        rows = end - start
        # sorted ascending: the newest input is the batch's longest
        if end == order.size or rows == max_rows or (rows + 1) * int(lengths[order[end]]) * per_step > budget:
            batches.append(order[start:end])
            start = end
    return batches
