"""Losses: softmax cross-entropy, sigmoid binary cross-entropy, mean squared error.

Every loss has the same small interface::

    loss = SoftmaxCrossEntropy()
    value = loss.forward(logits, targets, mask=None)   # float: mean over counted positions
    loss.count                                         # how many positions were counted
    dlogits = loss.backward()                          # dL/dlogits, same shape as logits

The mean is taken over the positions that count (mask true, target not ``ignore_index``), so
a padded batch gives the same loss and gradient as the same sequences without padding. When
nothing counts, the loss is 0.0 and the gradient is zero.

Shapes: N positions (any leading axes ``...``), V classes.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .layers import hook
from .layers.core import log_softmax  # noqa: F401  (the one log-softmax; losses.log_softmax stays importable)


def _check_mask(name: str, mask, shape: tuple):
    """The mask as a boolean array of ``shape`` (or None); errors name the loss and shapes."""
    if mask is None:
        return None
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"{name}: mask has shape {tuple(mask.shape)}, expected {tuple(shape)}")
    return mask if mask.dtype == bool else mask != 0


class SoftmaxCrossEntropy:
    """L = mean over counted positions n of  -log softmax(z_n)[t_n].

    logits z (..., V), integer targets t (...), optional mask (...) (true = counts). Positions
    whose target equals ``ignore_index`` do not count either. With p = softmax(z):

        dL/dz_n = (p_n - onehot(t_n)) / count      for counted n,   0 otherwise.

    Forward computes exp(z - shift) once into a buffer that this object keeps (float32 stays
    float32), with each row's max as the shift (softmax is the same for any shift; this one
    keeps exp in range), and ``backward`` turns that buffer into dL/dz in place: one multiply
    by a per-row factor 1 / (sum * count), then minus 1 / count at each target. The returned
    gradient *is* that buffer, so it stays valid until the next ``forward``. The speed package
    has a faster form of the exponentials (``layers/fast/softmax.py``: cache-sized row blocks,
    fewer shifts, a fused numba kernel on two threads), which the loss asks for through
    ``layers/hook.py``; the tests hold the two equal.
    """

    def __init__(self, ignore_index: int = -100):
        self.ignore_index = ignore_index
        self.count = 0
        self._buf = None
        self._cache = None

    def forward(self, logits, targets, mask=None) -> float:
        xp = backend.xp
        name = "SoftmaxCrossEntropy"
        if logits.ndim < 1 or tuple(logits.shape[:-1]) != tuple(targets.shape):
            raise ValueError(f"{name}: logits of shape {tuple(logits.shape)} need targets of shape "
                             f"{tuple(logits.shape[:-1])}, got {tuple(targets.shape)}")
        if targets.dtype.kind not in "iu":
            raise ValueError(f"{name}: targets must be integer class ids, got dtype {targets.dtype}")
        mask = _check_mask(name, mask, targets.shape)
        V = logits.shape[-1]
        z = logits.reshape(-1, V)
        t = targets.reshape(-1)
        N = z.shape[0]

        valid = t != self.ignore_index
        if mask is not None:
            valid &= mask.reshape(-1)
        count = int(valid.sum())
        all_valid = count == N
        # ignored positions may hold ignore_index (e.g. -100): gather at a safe id instead
        t_safe = t if all_valid else xp.where(valid, t, 0)
        if count and (int(t_safe.min()) < 0 or int(t_safe.max()) >= V):
            raise ValueError(f"{name}: targets must lie in [0, {V}) (or equal ignore_index="
                             f"{self.ignore_index}), got range [{int(t[valid].min())}, "
                             f"{int(t[valid].max())}]")

        # Reuse the buffer across calls: a fresh (N, V) array every step costs page faults.
        if self._buf is None or self._buf.shape != z.shape or self._buf.dtype != z.dtype:
            self._buf = xp.empty(z.shape, dtype=z.dtype)
        e = self._buf
        s = xp.empty(N, dtype=z.dtype)
        z_t = xp.empty(N, dtype=z.dtype)
        rows = xp.arange(N)
        if not hook.fast_form("softmax_exp", z, e, s, z_t, rows, t_safe):
            self._exp(z, e, s, z_t, rows, t_safe)
        per_row = xp.log(s) - z_t  # -log p[t] = log sum exp(z - shift) - (z[t] - shift)
        if all_valid:
            total = float(per_row.sum(dtype=np.float64))
        else:
            total = float((per_row * valid).sum(dtype=np.float64))

        if not all_valid:
            counted = xp.flatnonzero(valid)
            rows, t_safe = counted, t_safe[counted]
        self.count = count
        self._cache = (logits.shape, rows, t_safe, valid, all_valid, s)
        return total / count if count else 0.0

    @staticmethod
    def _exp(z, e, s, z_t, rows, t):
        """e = exp(z - m), s = its row sums, z_t = z[n, t_n] - m, with m each row's max."""
        xp = backend.xp
        xp.subtract(z, z.max(axis=1, keepdims=True), out=e)
        z_t[...] = e[rows, t]
        xp.exp(e, out=e)
        e.sum(axis=1, out=s)

    def backward(self):
        """dL/dlogits (same shape as logits), computed in place in the forward buffer."""
        if self._cache is None:
            raise RuntimeError("SoftmaxCrossEntropy.backward called before forward")
        shape, rows, t, valid, all_valid, s = self._cache
        self._cache = None  # the buffer becomes the gradient: a second backward would be wrong
        e = self._buf
        if self.count == 0:
            e[...] = 0
            return e.reshape(shape)
        inv_count = 1.0 / self.count
        # p = e / s, then (p - onehot) / count; uncounted rows get factor 0
        factor = inv_count / s
        if not all_valid:
            factor *= valid
        e *= factor[:, None]
        e[rows, t] -= inv_count  # rows, t: the counted positions only
        return e.reshape(shape)

    __call__ = forward


def _broadcast_mask(name: str, mask, shape: tuple):
    """A mask over the leading axes of ``shape`` (or all of them), as a float-free bool array
    broadcastable to ``shape``; also returns how many elements it counts."""
    if mask is None:
        return None, int(np.prod(shape)) if len(shape) else 1
    mshape = tuple(mask.shape)
    if mshape != tuple(shape[:len(mshape)]):
        raise ValueError(f"{name}: mask of shape {mshape} must match the leading axes of the "
                         f"predictions, shape {tuple(shape)}")
    m = mask if mask.dtype == bool else mask != 0
    m = m.reshape(mshape + (1,) * (len(shape) - len(mshape)))
    per_position = int(np.prod(shape[len(mshape):])) if len(shape) > len(mshape) else 1
    return m, int(m.sum()) * per_position


class SigmoidBCE:
    """Binary cross-entropy from logits: L = mean of  max(z, 0) - z y + log(1 + exp(-|z|)).

    That form equals -y log s(z) - (1 - y) log(1 - s(z)) with s the sigmoid, but never
    overflows. logits z and targets y (0/1 or probabilities) share a shape; the optional
    mask covers all axes or the leading ones (e.g. (B, T) for (B, T, 1) predictions).
    dL/dz = (s(z) - y) / count on counted elements.
    """

    def __init__(self):
        self.count = 0
        self._cache = None

    def forward(self, logits, targets, mask=None) -> float:
        xp = backend.xp
        name = "SigmoidBCE"
        if tuple(logits.shape) != tuple(targets.shape):
            raise ValueError(f"{name}: logits of shape {tuple(logits.shape)} and targets of shape "
                             f"{tuple(targets.shape)} must match")
        m, count = _broadcast_mask(name, mask, logits.shape)
        y = targets.astype(logits.dtype, copy=False)
        elem = xp.maximum(logits, 0) - logits * y + xp.log1p(xp.exp(-xp.abs(logits)))
        if m is not None:
            elem *= m
        self.count = count
        self._cache = (logits, y, m)
        return float(elem.sum(dtype=np.float64)) / count if count else 0.0

    def backward(self):
        xp = backend.xp
        logits, y, m = self._cache
        d = 0.5 * (xp.tanh(0.5 * logits) + 1.0)  # sigmoid without overflow
        d -= y
        if m is not None:
            d *= m
        d *= (1.0 / self.count) if self.count else 0.0
        return d

    __call__ = forward


class MSE:
    """Mean squared error: L = mean of (yhat - y)^2 over counted elements.

    The optional mask covers all axes or the leading ones. dL/dyhat = 2 (yhat - y) / count.
    """

    def __init__(self):
        self.count = 0
        self._cache = None

    def forward(self, predictions, targets, mask=None) -> float:
        name = "MSE"
        if tuple(predictions.shape) != tuple(targets.shape):
            raise ValueError(f"{name}: predictions of shape {tuple(predictions.shape)} and targets of "
                             f"shape {tuple(targets.shape)} must match")
        m, count = _broadcast_mask(name, mask, predictions.shape)
        diff = predictions - targets.astype(predictions.dtype, copy=False)
        if m is not None:
            diff *= m
        self.count = count
        self._cache = diff
        return float((diff * diff).sum(dtype=np.float64)) / count if count else 0.0

    def backward(self):
        diff = self._cache
        return diff * ((2.0 / self.count) if self.count else 0.0)

    __call__ = forward


LOSSES = {"softmax_cross_entropy": SoftmaxCrossEntropy, "sigmoid_bce": SigmoidBCE, "mse": MSE}


def get(name: str, **kwargs):
    """A loss by name: ``softmax_cross_entropy``, ``sigmoid_bce`` or ``mse``."""
    if name not in LOSSES:
        raise ValueError(f"unknown loss {name!r}; known: {sorted(LOSSES)}")
    return LOSSES[name](**kwargs)
