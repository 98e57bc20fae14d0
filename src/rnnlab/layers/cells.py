"""One time step of a recurrent layer: ``RNNCell``, ``LSTMCell``, ``GRUCell``.

A cell maps (x_t, states_{t-1}) to (h_t, states_t). It is the plain, readable reference for
the whole-sequence layers in ``recurrent.py`` (whose time loop is written for speed; a test
proves both agree), and it is usable on its own, e.g. in a hand-written decoder loop::

    cell = LSTMCell(32)
    states = None                               # zeros
    for t in range(T):
        h, states = cell.forward(x[:, t], states)
    ...
    dstates = None
    for t in reversed(range(T)):                # backward takes the steps back in reverse
        dx_t, dstates = cell.backward(dh[:, t], dstates)
        ...                                     # sum cell.grads over the steps if training

``forward(x_t, states)``: x_t (B, D), states a list of (B, H) arrays (None: zeros); returns
h_t (B, H) and the list of new states ([h_t] or, for the LSTM, [h_t, c_t]).
``backward(dh, dstates=None)``: dh = dL/dh_t for the output, dstates = dL/d(new states)
(None or None entries: zero); returns dL/dx_t and dL/d(previous states). Every ``forward``
pushes its cache and every ``backward`` pops the latest one (last in, first out), so a cell
can be stepped T times and then taken back T times; each ``backward`` *overwrites* ``grads``
with that step's parameter gradients (sum them over the steps). ``clear()`` drops the caches
(call it when stepping without a backward, e.g. at inference).

Weights in the Keras layout (gate blocks side by side on the last axis):
``kernel`` W (D, G*H), ``recurrent_kernel`` U (H, G*H), ``bias`` b, with G = 1 (RNN),
4 (LSTM, gates i, f, c, o), 3 (GRU, gates z, r, h). Shapes: B batch, D input, H units.
Defaults as Keras: glorot-uniform W, orthogonal U, zero b, LSTM forget-gate bias 1.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .. import initializers
from .base import Layer, ShapeError
from .core import ACTIVATIONS, _init_name

RNN_ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")


def sigmoid(x):
    """sigma(x) = 1 / (1 + exp(-x)), computed as 0.5 tanh(x / 2) + 0.5 (no overflow)."""
    xp = backend.xp
    return 0.5 * xp.tanh(0.5 * x) + 0.5


def c_order(initializer):
    """``initializer`` returning a C-contiguous array. ``orthogonal`` of a wide (H, G*H) shape
    is a transposed Q (Fortran order), and a parameter must be C-ordered: ``reshape(-1)`` has
    to be a view (numerical gradient checks, flat optimizer code) and GEMMs read it row-wise."""
    init = initializers.get(initializer)

    def wrapped(shape, rng=None):
        return np.ascontiguousarray(init(shape, rng))

    wrapped.__name__ = getattr(init, "__name__", "initializer")
    return wrapped


def lstm_bias_initializer(bias_initializer, units: int):
    """Keras ``unit_forget_bias``: the bias from ``bias_initializer`` with the forget-gate
    block (units H..2H of i, f, c, o) set to 1 (Jozefowicz et al. 2015)."""
    base = initializers.get(bias_initializer)

    def init(shape, rng=None):
        b = np.array(base(shape, rng), dtype=np.float64)
        b[units:2 * units] = 1.0
        return b

    init.__name__ = "unit_forget_bias"
    return init


class _Cell(Layer):
    """Shared parts: weights, state checks, the cache stack, config."""

    GATES = 1
    N_STATES = 1

    def __init__(self, units: int, kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"{type(self).__name__}: units must be >= 1, got {units}")
        self.units = int(units)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self._caches: list = []

    @property
    def state_size(self) -> list[int]:
        return [self.units] * self.N_STATES

    def _bias_shape(self) -> tuple:
        return (self.GATES * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def build(self, input_shape):
        super().build(input_shape)
        D, GH = int(input_shape[-1]), self.GATES * self.units
        rng = self._rng()  # one generator for all weights: no two weights share draws
        self.kernel = self.add_weight("kernel", (D, GH), c_order(self.kernel_initializer), rng)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, GH),
                                                c_order(self.recurrent_initializer), rng)
        self.bias = self.add_weight("bias", self._bias_shape(), c_order(self._bias_init()), rng)

    def _check(self, x, states):
        """Validate x (B, D) and states; return the states as a list of (B, H) arrays."""
        xp = backend.xp
        if x.ndim != 2:
            raise ShapeError(f"{self.describe()}: expected a 2-D input (batch, features) for one time step, "
                             f"got shape {tuple(x.shape)}")
        self.maybe_build(x)
        self.check_input(x, last_dim=self.kernel.shape[0])
        self.check_finite(x)
        B, H = x.shape[0], self.units
        if states is None:
            return [xp.zeros((B, H), dtype=self.kernel.dtype) for _ in range(self.N_STATES)]
        if not isinstance(states, (list, tuple)):
            states = [states]
        if len(states) != self.N_STATES:
            raise ShapeError(f"{self.describe()}: expected {self.N_STATES} state array(s) of shape (batch, units) = "
                             f"{(B, H)}, got {len(states)}")
        for k, s in enumerate(states):
            if tuple(s.shape) != (B, H):
                raise ShapeError(f"{self.describe()}: state {k} must have shape (batch, units) = {(B, H)} "
                                 f"for input of shape {tuple(x.shape)}, got {tuple(s.shape)}")
        return list(states)

    def _pop(self):
        if not self._caches:
            raise RuntimeError(f"{self.describe()}: backward called more times than forward")
        return self._caches.pop()

    def _dstates(self, dstates, like):
        """dL/d(new states) as a full list, None entries as zeros."""
        xp = backend.xp
        dstates = list(dstates) if dstates is not None else [None] * self.N_STATES
        if len(dstates) != self.N_STATES:
            raise ShapeError(f"{self.describe()}: expected {self.N_STATES} state gradient(s), got {len(dstates)}")
        return [xp.zeros_like(like) if d is None else d for d in dstates]

    def clear(self) -> None:
        """Drop the cached steps (after stepping without backward)."""
        self._caches = []

    def compute_output_shape(self, input_shape):
        return (self.units,)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "kernel_initializer": _init_name(self.kernel_initializer),
                "recurrent_initializer": _init_name(self.recurrent_initializer),
                "bias_initializer": _init_name(self.bias_initializer)}


class RNNCell(_Cell):
    """Vanilla (Elman) step:  h_t = f(h_{t-1} U + x_t W + b),  f = tanh by default.

    Forward, with a = x W + h U + b (B, H):  h' = f(a).
    Backward, from dh' (output and state gradients summed):
        da = dh' * f'(a)          (tanh: 1 - h'^2, computed from the output)
        dW = x^T da,  dU = h^T da,  db = sum_B da,  dx = da W^T,  dh = da U^T.
    """

    def __init__(self, units: int, activation: str = "tanh", **kwargs):
        super().__init__(units, **kwargs)
        if activation not in RNN_ACTIVATIONS:
            raise ValueError(f"{type(self).__name__}: activation must be one of {RNN_ACTIVATIONS}, got {activation!r}")
        self.activation = activation

    def forward(self, x, states=None):
        (h,) = self._check(x, states)
        a = x @ self.kernel + h @ self.recurrent_kernel + self.bias
        h_new = ACTIVATIONS[self.activation][0](a)
        self._caches.append((x, h, h_new))
        return h_new, [h_new]

    def backward(self, dh, dstates=None):
        x, h, h_new = self._pop()
        (dh_state,) = self._dstates(dstates, h_new)
        da = ACTIVATIONS[self.activation][1](h_new, dh + dh_state)
        self._grads[0][...] = x.T @ da
        self._grads[1][...] = h.T @ da
        self._grads[2][...] = da.sum(axis=0)
        return da @ self.kernel.T, [da @ self.recurrent_kernel.T]

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class LSTMCell(_Cell):
    """Long short-term memory step (Hochreiter & Schmidhuber 1997, with forget gate), gates i, f, c, o.

    Forward, with z = x W + h U + b (B, 4H) split into z_i, z_f, z_c, z_o:
        i = s(z_i), f = s(z_f), g = tanh(z_c), o = s(z_o)       (s = sigmoid)
        c' = f * c + i * g,   h' = o * tanh(c')
    Backward, from dh' (output + state) and dc':
        dc  = dc' + dh' * o * (1 - tanh(c')^2)
        dz_i = dc * g * i(1 - i),  dz_f = dc * c * f(1 - f),
        dz_c = dc * i * (1 - g^2), dz_o = dh' * tanh(c') * o(1 - o)
        dc_prev = dc * f,  dh_prev = dz U^T,  dx = dz W^T,
        dW = x^T dz,  dU = h^T dz,  db = sum_B dz.
    """

    GATES = 4
    N_STATES = 2

    def __init__(self, units: int, unit_forget_bias: bool = True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_init(self):
        if self.unit_forget_bias:
            return lstm_bias_initializer(self.bias_initializer, self.units)
        return self.bias_initializer

    def forward(self, x, states=None):
        xp = backend.xp
        h, c = self._check(x, states)
        H = self.units
        z = x @ self.kernel + h @ self.recurrent_kernel + self.bias
        i, f, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), sigmoid(z[:, 3 * H:])
        g = xp.tanh(z[:, 2 * H:3 * H])
        c_new = f * c + i * g
        tc = xp.tanh(c_new)
        h_new = o * tc
        self._caches.append((x, h, c, i, f, g, o, tc))
        return h_new, [h_new, c_new]

    def backward(self, dh, dstates=None):
        xp = backend.xp
        x, h, c, i, f, g, o, tc = self._pop()
        dh_state, dc_state = self._dstates(dstates, h)
        dh = dh + dh_state
        dc = dc_state + dh * o * (1.0 - tc * tc)
        dz = xp.concatenate([dc * g * i * (1.0 - i), dc * c * f * (1.0 - f),
                             dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], axis=1)
        self._grads[0][...] = x.T @ dz
        self._grads[1][...] = h.T @ dz
        self._grads[2][...] = dz.sum(axis=0)
        return dz @ self.kernel.T, [dz @ self.recurrent_kernel.T, dc * f]

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


class GRUCell(_Cell):
    """Gated recurrent unit step (Cho et al. 2014), Keras gate order z, r, h.

    ``reset_after=True`` (Keras 2 default, cuDNN and PyTorch form), bias (2, 3H) = [input row;
    recurrent row]:
        xz = x W + b[0],  hz = h U + b[1]                       (B, 3H), split into z, r, h parts
        z = s(xz_z + hz_z),  r = s(xz_r + hz_r),  hh = tanh(xz_h + r * hz_h)
        h' = z * h + (1 - z) * hh
    ``reset_after=False`` (the original form), bias (3H,):
        z = s(x W_z + h U_z + b_z),  r = s(x W_r + h U_r + b_r)
        hh = tanh(x W_h + (r * h) U_h + b_h),  h' = z * h + (1 - z) * hh
    Backward (reset_after=True), from dh' (output + state):
        da_h = dh' (1 - z)(1 - hh^2),  da_z = dh' (h - hh) z(1 - z),  da_r = da_h hz_h r(1 - r)
        dxz = [da_z, da_r, da_h],  dhz = [da_z, da_r, da_h * r]
        dW = x^T dxz, db[0] = sum dxz, dU = h^T dhz, db[1] = sum dhz,
        dx = dxz W^T,  dh = dh' z + dhz U^T.
    (reset_after=False: d(r h) = da_h U_h^T, da_r = d(r h) * h * r(1 - r),
        dh = dh' z + d(r h) * r + [da_z, da_r] U_zr^T, dU_h = (r h)^T da_h.)
    """

    GATES = 3

    def __init__(self, units: int, reset_after: bool = True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def forward(self, x, states=None):
        xp = backend.xp
        (h,) = self._check(x, states)
        H = self.units
        W, U, b = self.kernel, self.recurrent_kernel, self.bias
        if self.reset_after:
            xz = x @ W + b[0]
            hz = h @ U + b[1]
            z = sigmoid(xz[:, :H] + hz[:, :H])
            r = sigmoid(xz[:, H:2 * H] + hz[:, H:2 * H])
            hh = xp.tanh(xz[:, 2 * H:] + r * hz[:, 2 * H:])
            cache = (x, h, z, r, hh, hz[:, 2 * H:])
        else:
            xz = x @ W + b
            hzr = h @ U[:, :2 * H]
            z = sigmoid(xz[:, :H] + hzr[:, :H])
            r = sigmoid(xz[:, H:2 * H] + hzr[:, H:])
            rh = r * h
            hh = xp.tanh(xz[:, 2 * H:] + rh @ U[:, 2 * H:])
            cache = (x, h, z, r, hh, rh)
        h_new = z * h + (1.0 - z) * hh
        self._caches.append(cache)
        return h_new, [h_new]

    def backward(self, dh, dstates=None):
        xp = backend.xp
        H = self.units
        W, U = self.kernel, self.recurrent_kernel
        x, h, z, r, hh, extra = self._pop()
        (dh_state,) = self._dstates(dstates, h)
        dh = dh + dh_state
        da_h = dh * (1.0 - z) * (1.0 - hh * hh)
        da_z = dh * (h - hh) * z * (1.0 - z)
        if self.reset_after:
            hz_h = extra
            da_r = da_h * hz_h * r * (1.0 - r)
            dxz = xp.concatenate([da_z, da_r, da_h], axis=1)
            dhz = xp.concatenate([da_z, da_r, da_h * r], axis=1)
            self._grads[0][...] = x.T @ dxz
            self._grads[1][...] = h.T @ dhz
            self._grads[2][0] = dxz.sum(axis=0)
            self._grads[2][1] = dhz.sum(axis=0)
            return dxz @ W.T, [dh * z + dhz @ U.T]
        rh = extra
        drh = da_h @ U[:, 2 * H:].T
        da_r = drh * h * r * (1.0 - r)
        da = xp.concatenate([da_z, da_r, da_h], axis=1)
        self._grads[0][...] = x.T @ da
        self._grads[1][:, :2 * H] = h.T @ da[:, :2 * H]
        self._grads[1][:, 2 * H:] = rh.T @ da_h
        self._grads[2][...] = da.sum(axis=0)
        dh_prev = dh * z + drh * r + da[:, :2 * H] @ U[:, :2 * H].T
        return da @ W.T, [dh_prev]

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}
