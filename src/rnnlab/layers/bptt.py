"""Backpropagation through time, written plainly: read BPTT here.

A recurrent layer applies one step (``steps.py``) at every time step with the same weights.
Its forward loops the step over time and keeps each step's cache; its backward walks the steps
in reverse, feeding each one the gradient of its output plus the gradient its state sent back
from the step after it, and sums the weight gradients of all steps (the weights are shared):

    forward:   h_t, cache_t = step(x_t W + b, h_{t-1})                   t = 1 .. T
    backward:  dxz_t, dh_{t-1}, dU_t = step_backward(dy_t + dh_t, cache_t)  t = T .. 1
               dW = sum_t x_t^T dxz_t,  dU = sum_t dU_t,  db = sum_t sum_B dxz_t,
               dx_t = dxz_t W^T

One function pair per kind: ``rnn_forward`` / ``rnn_backward``, ``lstm_forward`` /
``lstm_backward``, ``gru_forward`` / ``gru_backward``. Weights in the Keras layout (as the
layers': ``layer.kernel, layer.recurrent_kernel, layer.bias``), x (B, T, D), h (B, T, H); no
masks, no speed tricks: the tests' oracle.

``ReferenceLoop`` is the same loop as a layer of ``recurrent.py`` runs it, for any kind, with
initial states and masks (a masked step keeps its states): what a layer runs when the fast
loops (``rnnlab.layers.fast``) are switched off or do not apply (CuPy). The fast loops compute
the same numbers; the tests hold both to the functions here in float64.
"""
from __future__ import annotations

from .. import backend
from . import steps
from .steps import (gru_step, gru_step_backward, lstm_step, lstm_step_backward, rnn_step,
                    rnn_step_backward)


def _zeros(B, H, like):
    return backend.xp.zeros((B, H), dtype=like.dtype)


# ---- LSTM: the one to read first ------------------------------------------------------------------
def lstm_forward(x, W, U, b, h0=None, c0=None):
    """x (B, T, D) -> hs (B, T, H) and the cache for ``lstm_backward``. h0, c0: (B, H) or zeros."""
    xp = backend.xp
    B, T, _ = x.shape
    H = U.shape[0]
    h = _zeros(B, H, W) if h0 is None else h0
    c = _zeros(B, H, W) if c0 is None else c0
    hs = xp.empty((B, T, H), dtype=W.dtype)
    caches = []
    for t in range(T):
        h, c, cache = lstm_step(x[:, t] @ W + b, h, c, U)     # the same weights at every step
        hs[:, t] = h
        caches.append(cache)
    return hs, (x, caches, c)


def lstm_backward(dhs, cache, W, U, dh_last=None, dc_last=None):
    """dL/dhs (B, T, H) (and dL/d of the final h, c) -> dx (B, T, D), (dW, dU, db), (dh0, dc0)."""
    xp = backend.xp
    x, caches, _ = cache
    B, T, _ = x.shape
    H = U.shape[0]
    dx = xp.empty(x.shape, dtype=W.dtype)
    dW, dU, db = xp.zeros_like(W), xp.zeros_like(U), xp.zeros(W.shape[1], dtype=W.dtype)
    dh = _zeros(B, H, W) if dh_last is None else dh_last      # what step t+1 sent back to h_t
    dc = _zeros(B, H, W) if dc_last is None else dc_last
    for t in reversed(range(T)):
        dxz, dh, dc, dU_t = lstm_step_backward(dhs[:, t] + dh, dc, caches[t], U)
        dx[:, t] = dxz @ W.T
        dW += x[:, t].T @ dxz                                 # shared weights: sum over steps
        dU += dU_t
        db += dxz.sum(axis=0)
    return dx, (dW, dU, db), (dh, dc)


# ---- SimpleRNN and GRU: one state, h -------------------------------------------------------------------
def _one_state_forward(x, W, b_in, h0, H, step):
    """The loop of ``lstm_forward`` for a one-state kind: h, cache = step(x_t W + b_in, h)."""
    xp = backend.xp
    B, T, _ = x.shape
    h = _zeros(B, H, W) if h0 is None else h0
    hs = xp.empty((B, T, H), dtype=W.dtype)
    caches = []
    for t in range(T):
        h, cache = step(x[:, t] @ W + b_in, h)
        hs[:, t] = h
        caches.append(cache)
    return hs, caches


def rnn_forward(x, W, U, b, h0=None, activation="tanh"):
    """x (B, T, D) -> hs (B, T, H) and the cache for ``rnn_backward``."""
    hs, caches = _one_state_forward(x, W, b, h0, U.shape[0], lambda xz, h: rnn_step(xz, h, U, activation))
    return hs, (x, caches, activation)


def rnn_backward(dhs, cache, W, U, dh_last=None):
    """dL/dhs (B, T, H) (and dL/d of the final h) -> dx, (dW, dU, db), (dh0,)."""
    xp = backend.xp
    x, caches, activation = cache
    B, T, _ = x.shape
    dx = xp.empty(x.shape, dtype=W.dtype)
    dW, dU, db = xp.zeros_like(W), xp.zeros_like(U), xp.zeros(W.shape[1], dtype=W.dtype)
    dh = _zeros(B, U.shape[0], W) if dh_last is None else dh_last
    for t in reversed(range(T)):
        dxz, dh, dU_t = rnn_step_backward(dhs[:, t] + dh, caches[t], U, activation)
        dx[:, t] = dxz @ W.T
        dW += x[:, t].T @ dxz
        dU += dU_t
        db += dxz.sum(axis=0)
    return dx, (dW, dU, db), (dh,)


def gru_forward(x, W, U, b, h0=None):
    """x (B, T, D) -> hs (B, T, H) and the cache for ``gru_backward``. ``b`` (2, 3H) is the
    reset_after form (input row, recurrent row), (3H,) the reset_after=False form."""
    b_in, b_rec = (b[0], b[1]) if b.ndim == 2 else (b, None)
    hs, caches = _one_state_forward(x, W, b_in, h0, U.shape[0], lambda xz, h: gru_step(xz, h, U, b_rec))
    return hs, (x, caches, b.ndim)


def gru_backward(dhs, cache, W, U, dh_last=None):
    """dL/dhs (B, T, H) (and dL/d of the final h) -> dx, (dW, dU, db), (dh0,); db has b's shape."""
    xp = backend.xp
    x, caches, b_ndim = cache
    B, T, _ = x.shape
    dx = xp.empty(x.shape, dtype=W.dtype)
    dW, dU = xp.zeros_like(W), xp.zeros_like(U)
    db = xp.zeros((2, W.shape[1]) if b_ndim == 2 else W.shape[1], dtype=W.dtype)
    db_in = db[0] if b_ndim == 2 else db
    dh = _zeros(B, U.shape[0], W) if dh_last is None else dh_last
    for t in reversed(range(T)):
        dxz, dh, dU_t, db_rec = gru_step_backward(dhs[:, t] + dh, caches[t], U)
        dx[:, t] = dxz @ W.T
        dW += x[:, t].T @ dxz
        dU += dU_t
        db_in += dxz.sum(axis=0)
        if db_rec is not None:
            db[1] += db_rec
    return dx, (dW, dU, db), (dh,)


# ---- the loop a layer runs: any kind, with initial states and masks -------------------------------------
class Mask:
    """A (B, T) mask in time-major processing order, as the loops use it: m (T, B, 1) 1.0 at
    real steps, 0.0 at masked ones; keep (T, B, 1) bool: the step is masked, so the states are
    kept; keepf: keep as floats; partial[t]: some row of step t is masked."""

    def __init__(self, mask_tb, dtype):
        xp = backend.xp
        self.m = mask_tb[..., None].astype(dtype)
        self.keep = ~mask_tb[..., None]
        self.keepf = self.keep.astype(dtype)
        self.partial = backend.to_numpy(~xp.all(mask_tb, axis=1)).tolist()


class ReferenceLoop:
    """A recurrent layer's loop over time, written plainly: the cell's step (``steps.step``)
    at every time step on the layer's weights, its backward (``steps.step_backward``) in
    reverse, the weight gradients summed over the steps. The interface of a fast loop:

        forward(x, init, mk) -> Hs (T+1, B, H) time-major (Hs[0] the initial h), final states
        backward(dH, dlast, mk) -> dX (T, B, D), dL/d(initial states); writes layer's grads

    x (B, T, D) in processing order; init: list of (B, H) or None (zeros); mk: ``Mask`` or
    None. A masked step keeps its states: its new states are the old ones, so its gradient
    passes to the step before unchanged and it adds nothing to the weight gradients.
    """

    def __init__(self, layer):
        self.layer = layer
        self._cache = None

    def forward(self, x, init, mk):
        xp, layer = backend.xp, self.layer
        B, T, _ = x.shape
        H, W, U = layer.units, layer.kernel, layer.recurrent_kernel
        states = [xp.zeros((B, H), dtype=W.dtype) for _ in range(layer.N_STATES)] if init is None else list(init)
        Hs = xp.empty((T + 1, B, H), dtype=W.dtype)
        Hs[0] = states[0]
        caches = []
        for t in range(T):
            new, cache = steps.step(layer.KIND, x[:, t] @ W + layer.input_bias(), states, U, **layer.step_options())
            if mk is not None:
                new = [xp.where(mk.keep[t], old, s) for old, s in zip(states, new)]
            states = new
            Hs[t + 1] = states[0]
            caches.append(cache)
        self._cache = (x, caches)
        return Hs, states

    def backward(self, dH, dlast, mk):
        xp, layer = backend.xp, self.layer
        x, caches = self._cache
        B, T, D = x.shape
        W, U = layer.kernel, layer.recurrent_kernel
        dW, dU, db = (xp.zeros_like(g) for g in layer._grads)
        db_in = db[0] if db.ndim == 2 else db
        dX = xp.empty((T, B, D), dtype=W.dtype)
        activation = getattr(layer, "activation", "tanh")
        dstates = [d.copy() for d in dlast]          # what step t+1 sent back to the states of step t
        for t in reversed(range(T)):
            dnew = [dstates[0] + dH[t], *dstates[1:]]
            if mk is not None:                       # a masked row: no step, the gradient passes on
                dnew, passed = [d * mk.m[t] for d in dnew], [d * mk.keepf[t] for d in dnew]
            dxz, dstates, dU_t, db_rec = steps.step_backward(layer.KIND, dnew, caches[t], U, activation)
            if mk is not None:
                dstates = [d + p for d, p in zip(dstates, passed)]
            dX[t] = dxz @ W.T
            dW += x[:, t].T @ dxz                    # shared weights: sum over steps
            dU += dU_t
            db_in += dxz.sum(axis=0)
            if db_rec is not None:
                db[1] += db_rec
        for grad, value in zip(layer._grads, (dW, dU, db)):
            grad[...] = value
        return dX, dstates

    def run_pair(self, forward_call, backward_call):
        """The two directions of a bidirectional layer, one after the other."""
        return forward_call(), backward_call()
