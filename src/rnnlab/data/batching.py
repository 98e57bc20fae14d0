"""Truncated-BPTT batches for language models.

The corpus (one long id sequence of N tokens) is cut into ``batch`` contiguous streams laid
side by side, row b holding tokens ``[b*L, (b+1)*L)`` with L = N // batch (the few tokens left
over at the end are dropped)::

    ids:      t0 t1 t2 ... t11                       batch=3 -> L=4
    streams:  row 0: t0 t1 t2  t3
              row 1: t4 t5 t6  t7
              row 2: t8 t9 t10 t11

Windows of ``bptt`` columns are read left to right: window k gives the inputs
``x = streams[:, k*bptt : k*bptt+T]`` and the targets one step ahead,
``y = streams[:, k*bptt+1 : k*bptt+1+T]`` (T = bptt, shorter for the last window). Because
window k+1 continues every row exactly where window k stopped, the recurrent state at the end
of window k is the right initial state for window k+1: the trainer carries it across (without
backpropagating through the boundary), which is what makes truncated BPTT see the whole text.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from .. import backend


def batchify(ids, batch: int) -> np.ndarray:
    """(N,) ids -> (batch, N // batch) contiguous streams (host NumPy, int64)."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
        raise ValueError(f"batchify: expected a 1-D sequence of token ids, got shape {ids.shape}")
    if batch < 1:
        raise ValueError(f"batchify: batch must be >= 1, got {batch}")
    length = len(ids) // batch
    if length < 2:
        raise ValueError(f"batchify: {len(ids)} tokens are too few for {batch} streams: each stream needs "
                         f"at least 2 tokens (an input and its next-token target)")
    return ids[:length * batch].astype(np.int64, copy=False).reshape(batch, length)


class BPTTBatches:
    """The windows of one pass over a corpus, in order, as (x, y) pairs of shape (batch, T).

    ``len(stream)`` is the number of windows; ``stream[k]`` is window k; iterating with
    ``stream.iter_from(k)`` starts at window k (what a resumed run does mid-epoch). Arrays are
    moved to the current backend (``backend.xp``) as they are handed out.
    """

    def __init__(self, ids, batch: int, bptt: int):
        if bptt < 1:
            raise ValueError(f"BPTTBatches: bptt must be >= 1, got {bptt}")
        self.data = batchify(ids, batch)
        self.batch, self.bptt = int(batch), int(bptt)
        self.steps = self.data.shape[1] - 1  # every column but the last has a next-token target

    def __len__(self) -> int:
        return -(-self.steps // self.bptt)

    @property
    def tokens(self) -> int:
        """Number of predicted tokens in one pass (batch * (L - 1))."""
        return self.batch * self.steps

    def __getitem__(self, k: int):
        if not 0 <= k < len(self):
            raise IndexError(f"window {k} out of range: this stream has {len(self)} windows")
        start = k * self.bptt
        stop = min(start + self.bptt, self.steps)
        xp = backend.xp
        x = xp.asarray(self.data[:, start:stop])
        y = xp.asarray(self.data[:, start + 1:stop + 1])
        return x, y

    def iter_from(self, start: int = 0) -> Iterator[tuple]:
        for k in range(start, len(self)):
            yield self[k]

    def __iter__(self):
        return self.iter_from(0)
