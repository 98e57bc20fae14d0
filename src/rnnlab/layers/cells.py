"""One time step of a recurrent layer: ``RNNCell``, ``LSTMCell``, ``GRUCell``.

A cell maps (x_t, states_{t-1}) to (h_t, states_t) with the step equations of ``steps.py``
(written once, shared with ``bptt.py`` and the seq2seq decoder). It is usable on its own,
e.g. in a hand-written decoder loop::

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

The weights, their options (``activation``, ``unit_forget_bias``, ``reset_after``) and the
config are those of ``RecurrentWeights`` and its kind classes ``RNNWeights``, ``LSTMWeights``,
``GRUWeights``, which the whole-sequence layers of ``recurrent.py`` share.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .. import initializers
from .. import validate
from . import kinds, steps
from .base import Layer, ShapeError
from .core import _init_name
from .steps import RNN_ACTIVATIONS


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


# ---- the weights and options every cell and whole-sequence layer shares -----------------------------
class RecurrentWeights(Layer):
    """``units``, the three weights (kernel W (D, G*H), recurrent_kernel U (H, G*H), bias), their
    initializers and config; a kind class (below) adds its option. ``KIND`` names the kind in
    ``kinds.py``, which gives G (gates) and the number of states."""

    KIND = "rnn"

    def __init__(self, units: int, kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.units = validate.positive_int(owner, "units", units)
        self.kernel_initializer = validate.initializer(owner, "kernel_initializer", kernel_initializer)
        self.recurrent_initializer = validate.initializer(owner, "recurrent_initializer", recurrent_initializer)
        self.bias_initializer = validate.initializer(owner, "bias_initializer", bias_initializer)

    GATES, N_STATES = kinds.GATES["rnn"], kinds.N_STATES["rnn"]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.GATES, cls.N_STATES = kinds.GATES[cls.KIND], kinds.N_STATES[cls.KIND]   # from the one table

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

    def input_bias(self):
        """The bias added to x W (b, or b[0] of a GRU with reset_after)."""
        return self.bias[0] if self.bias.ndim == 2 else self.bias

    def step_options(self) -> dict:
        """The keyword arguments of ``steps.step`` for this layer's weights and options."""
        return {}

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "kernel_initializer": _init_name(self.kernel_initializer),
                "recurrent_initializer": _init_name(self.recurrent_initializer),
                "bias_initializer": _init_name(self.bias_initializer)}


class RNNWeights(RecurrentWeights):
    """SimpleRNN weights and its ``activation`` (tanh, relu, sigmoid, linear)."""

    KIND = "rnn"

    def __init__(self, units: int, activation: str = "tanh", **kwargs):
        super().__init__(units, **kwargs)
        self.activation = validate.choice(type(self).__name__, "activation", activation, RNN_ACTIVATIONS)

    def step_options(self):
        return {"activation": self.activation}

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class LSTMWeights(RecurrentWeights):
    """LSTM weights; ``unit_forget_bias=True`` (Keras default) starts the forget-gate bias at 1."""

    KIND = "lstm"

    def __init__(self, units: int, unit_forget_bias: bool = True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = validate.flag(type(self).__name__, "unit_forget_bias", unit_forget_bias)

    def _bias_init(self):
        if self.unit_forget_bias:
            return lstm_bias_initializer(self.bias_initializer, self.units)
        return self.bias_initializer

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


class GRUWeights(RecurrentWeights):
    """GRU weights: bias (2, 3H) = [input row; recurrent row] with ``reset_after=True`` (Keras 2
    default, the cuDNN and PyTorch form), or (3H,) with ``reset_after=False``."""

    KIND = "gru"

    def __init__(self, units: int, reset_after: bool = True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = validate.flag(type(self).__name__, "reset_after", reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def step_options(self):
        return {"b_rec": self.bias[1]} if self.reset_after else {}

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}


# ---- cells ------------------------------------------------------------------------------------------
class _Cell(RecurrentWeights):
    """One step on the shared weights: state checks, the cache stack, forward and backward
    through ``steps.step`` / ``steps.step_backward``."""

    def __init__(self, units: int, **kwargs):
        super().__init__(units, **kwargs)
        self._caches: list = []

    @property
    def state_size(self) -> list[int]:
        return [self.units] * self.N_STATES

    def _check(self, x, states):
        """Validate x (B, D) and states; return the states as a list of (B, H) arrays."""
        xp = backend.xp
        self.check_dtype(x)
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
            self.check_dtype(s, what=f"state {k}")
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

    def forward(self, x, states=None):
        states = self._check(x, states)
        xz = x @ self.kernel + self.input_bias()
        new, cache = steps.step(self.KIND, xz, states, self.recurrent_kernel, **self.step_options())
        self._caches.append((x, cache))
        return new[0], new

    def backward(self, dh, dstates=None):
        """dW = x^T dxz, db = sum_B dxz (and the recurrent row from the step), dx = dxz W^T."""
        x, cache = self._pop()
        dnew = self._dstates(dstates, dh)
        dnew[0] = dnew[0] + dh
        activation = getattr(self, "activation", "tanh")
        dxz, dprev, dU, db_rec = steps.step_backward(self.KIND, dnew, cache, self.recurrent_kernel, activation)
        self._grads[0][...] = x.T @ dxz
        self._grads[1][...] = dU
        if db_rec is None:
            self._grads[2][...] = dxz.sum(axis=0)
        else:
            self._grads[2][0] = dxz.sum(axis=0)
            self._grads[2][1] = db_rec
        return dxz @ self.kernel.T, dprev

    def clear(self) -> None:
        """Drop the cached steps (after stepping without backward)."""
        self._caches = []

    def compute_output_shape(self, input_shape):
        return (self.units,)


class RNNCell(_Cell, RNNWeights):
    """Vanilla (Elman) step:  h_t = f(h_{t-1} U + x_t W + b),  f = tanh by default
    (``steps.rnn_step`` / ``rnn_step_backward``)."""


class LSTMCell(_Cell, LSTMWeights):
    """Long short-term memory step (Hochreiter & Schmidhuber 1997, with forget gate), gates
    i, f, c, o (``steps.lstm_step`` / ``lstm_step_backward``)."""


class GRUCell(_Cell, GRUWeights):
    """Gated recurrent unit step (Cho et al. 2014), Keras gate order z, r, h, either
    ``reset_after`` form (``steps.gru_step`` / ``gru_step_backward``)."""
