"""An *untied* recurrent network: separate weights for every time step.

The notes contrast parameter sharing (one W, U, b used at every step) with the alternative of a
network that gives step t its own weights:

    h_t = tanh(x_t W_t + h_{t-1} U_t + b_t),    t = 0 .. T-1,   h_{-1} = 0

Weights: ``kernel`` (T, D, H), ``recurrent_kernel`` (T, H, H), ``bias`` (T, H): the parameter
count T (D H + H H + H) grows linearly with the number of steps it was built for, where a shared
``SimpleRNN`` has D H + H H + H for any length. Sequences shorter than T use the first steps'
weights. A longer sequence has no weights for its later steps: ``forward`` refuses it with an
error naming both lengths (it does not crash or silently reuse weights).

Backward (with dh_t the gradient reaching h_t, a_t the pre-activation):

    da_t = dh_t * (1 - h_t^2);   dW_t = x_t^T da_t;   dU_t = h_{t-1}^T da_t;   db_t = sum_B da_t
    dx_t = da_t W_t^T;           dh_{t-1} += da_t U_t^T
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..initializers import glorot_uniform, orthogonal
from ..layers.base import Layer, ShapeError


class UntiedRNN(Layer):
    """A tanh RNN with one (W_t, U_t, b_t) per step t < ``steps``; x (B, T, D), T <= steps."""

    def __init__(self, units: int, steps: int, return_sequences: bool = False, **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1 or int(steps) < 1:
            raise ValueError(f"UntiedRNN: units and steps must be >= 1, got {units}, {steps}")
        self.units, self.steps = int(units), int(steps)
        self.return_sequences = bool(return_sequences)
        self._cache = None

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ShapeError(f"{self.describe()}: expects inputs (batch, time, features), got a build shape "
                             f"{tuple(input_shape)}")
        super().build(input_shape)
        D, H, T = int(input_shape[-1]), self.units, self.steps
        rng = self._rng()
        # each step's blocks drawn as a SimpleRNN's: glorot-uniform W, orthogonal U, zero b
        kernel = np.stack([glorot_uniform((D, H), rng) for _ in range(T)])
        recurrent = np.stack([orthogonal((H, H), rng=rng) for _ in range(T)])
        self.kernel = self.add_weight("kernel", (T, D, H), lambda shape, _rng: kernel)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (T, H, H), lambda shape, _rng: recurrent)
        self.bias = self.add_weight("bias", (T, H), "zeros")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.units) if self.return_sequences else (self.units,)

    def forward(self, x, **kwargs):
        xp = backend.xp
        self.check_input(x, ndim=3, layout="(batch, time, features)")
        self.maybe_build(x)
        B, T, D = x.shape
        if T > self.steps:
            raise ValueError(f"{self.describe()}: has weights for {self.steps} time steps (one set per step, "
                             f"the length it was built and trained for), got a sequence of {T} steps; "
                             f"an untied network cannot run past its training length")
        self.check_input(x, last_dim=self.kernel.shape[1])
        H = self.units
        hs = xp.zeros((T + 1, B, H), dtype=self.kernel.dtype)
        for t in range(T):
            a = x[:, t] @ self.kernel[t] + hs[t] @ self.recurrent_kernel[t] + self.bias[t]
            xp.tanh(a, out=hs[t + 1])
        self._cache = (x, hs)
        return hs[1:].transpose(1, 0, 2).copy() if self.return_sequences else hs[T].copy()

    def backward(self, dout):
        xp = backend.xp
        if self._cache is None:
            raise RuntimeError(f"{self.describe()}: backward called before forward")
        x, hs = self._cache
        B, T, D = x.shape
        for g in self.grads:
            g[...] = 0  # steps past T get no gradient
        dx = xp.empty_like(x)
        dh = xp.zeros((B, self.units), dtype=hs.dtype)
        for t in range(T - 1, -1, -1):
            if self.return_sequences:
                dh += dout[:, t]
            elif t == T - 1:
                dh += dout
            da = dh * (1.0 - hs[t + 1] ** 2)
            self._grads[0][t] = x[:, t].T @ da
            self._grads[1][t] = hs[t].T @ da
            self._grads[2][t] = da.sum(axis=0)
            dx[:, t] = da @ self.kernel[t].T
            dh = da @ self.recurrent_kernel[t].T
        return dx

    def get_config(self):
        return {**super().get_config(), "units": self.units, "steps": self.steps,
                "return_sequences": self.return_sequences}


def untied_count(steps: int, input_dim: int, units: int) -> int:
    """Parameters of an UntiedRNN for ``steps`` steps: T (D H + H H + H)."""
    return steps * (input_dim * units + units * units + units)
