"""Recurrent layers over whole sequences: ``SimpleRNN``, ``LSTM``, ``GRU`` (``Bidirectional``: bidirectional.py).

Each layer applies one set of weights at every time step (parameter sharing), so the same
layer runs on any sequence length T. The step equations are those of ``steps.py``
(shared with the cells and the seq2seq decoder); ``bptt.py`` loops them plainly over time
with their backward (read BPTT there), and the tests prove these layers equal to it.

Public contract (see docs/ARCHITECTURE.md, "Recurrent layers"):

    y = layer.forward(x, mask=None, initial_state=None, lengths=None)    x (B, T, D)
    dx = layer.backward(dy, dstates=None)                                 sets layer.dinitial_state

- ``return_sequences``: y is (B, T, H), else the last state (B, H).
- ``return_state``: forward returns ``(y, *states)`` (LSTM: h, c), and ``backward`` takes the
  gradients of those states in ``dstates`` (a list; None entries mean zero).
- ``mask`` (B, T) bool or ``lengths`` (B,): a masked step keeps the previous state and outputs
  zeros (as PyTorch packed sequences), so the last state is each sequence's last valid one.
- ``initial_state``: list of (B, H) arrays (zeros when None); ``backward`` leaves dL/d(initial
  states) in ``self.dinitial_state`` (an encoder-decoder passes it to the encoder).
- ``stateful=True``: the last state of a call is the initial state of the next (truncated BPTT:
  no gradient flows into it); ``reset_states()`` zeroes it.
- ``go_backwards=True``: processes the sequence from the last step to the first and returns
  the output sequence in that (reversed) order, as Keras.

**A layer is its cell plus a loop.** A layer holds the weights of its cell (``cells.py``:
the same weights, options and config as ``RNNCell`` / ``LSTMCell`` / ``GRUCell``), whose step
is written once in ``steps.py``, and runs a loop over time, a strategy object with
``forward(x, init, mask) -> (Hs, final_states)`` and ``backward(dH, dlast, mask) -> (dX,
dinitial_states)``: the reference loop (``bptt.ReferenceLoop``: the step looped over time, the
gradients summed, as ``bptt.py`` shows), or a fast loop handed to it through the one hook to
the speed package (``hook.fast_form("recurrent_loop", layer)``: ``rnnlab.layers.fast``, when
its switch is on). This module holds the contract, the checks and the layout changes around
the loop.

Shapes: B batch, T time, D input features, H units, G gates (SimpleRNN 1, LSTM 4, GRU 3).
"""
from __future__ import annotations

from .. import backend
from .. import validate
from . import hook
from .base import ShapeError
from .bptt import Mask, ReferenceLoop
from .cells import GRUWeights, LSTMWeights, RecurrentWeights, RNNWeights


class _Recurrent(RecurrentWeights):
    """What SimpleRNN, LSTM and GRU share: arguments, checks, states, layout changes, and the
    choice of loop (the weights and their config come from ``cells.RecurrentWeights``, as for
    the cells; the loop's interface is ``bptt.ReferenceLoop``'s).
    """

    def __init__(self, units: int, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, **kwargs):
        super().__init__(units, **kwargs)
        owner = type(self).__name__
        self.return_sequences = validate.flag(owner, "return_sequences", return_sequences)
        self.return_state = validate.flag(owner, "return_state", return_state)
        self.go_backwards = validate.flag(owner, "go_backwards", go_backwards)
        self.stateful = validate.flag(owner, "stateful", stateful)
        self.states = None          # the carried state of a stateful layer (None: zeros)
        self.dinitial_state = None  # set by backward
        self._cache = None
        self._reference_loop = ReferenceLoop(self)

    def loop(self):
        """The loop the next forward runs: the fast loop the hook hands out, else the reference loop."""
        return hook.fast_form("recurrent_loop", self) or self._reference_loop

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ShapeError(f"{self.describe()}: expects inputs of shape (batch, time, features), i.e. a "
                             f"build shape (time, features); got {tuple(input_shape)}")
        if input_shape[-1] is None:  # a config's Input((5, None)): the weights' shape is unknown
            raise ShapeError(f"{self.describe()}: cannot be built for inputs of an unknown number of features "
                             f"{tuple(input_shape)}")
        super().build(input_shape)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ShapeError(f"{self.describe()}: expects inputs of shape (batch, time, features), got a "
                             f"shape without batch of {tuple(input_shape)}")
        y = (input_shape[0], self.units) if self.return_sequences else (self.units,)
        if self.return_state:
            return [y] + [(self.units,)] * self.N_STATES
        return y

    def get_config(self):
        return {**super().get_config(), "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards, "stateful": self.stateful}

    def reset_states(self, states=None) -> None:
        """Zero the carried state of a stateful layer (or set it to ``states``: list of (B, H))."""
        if states is None:
            self.states = None
            return
        xp = backend.xp
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        if len(states) != self.N_STATES or any(s.ndim != 2 or s.shape[1] != self.units for s in states):
            raise ShapeError(f"{self.describe()}: reset_states expects {self.N_STATES} array(s) of shape "
                             f"(batch, {self.units}), got {[tuple(s.shape) for s in states]}")
        self.states = [xp.array(s, dtype=self.kernel.dtype) for s in states]

    def _initial_states(self, initial_state, x_shape):
        """The list of initial state arrays, or None for zeros."""
        xp = backend.xp
        B, H = x_shape[0], self.units
        if initial_state is None:
            if self.stateful and self.states is not None:
                if self.states[0].shape[0] != B:
                    raise ShapeError(f"{self.describe()}: stateful layer carries a state of shape "
                                     f"{tuple(self.states[0].shape)} but got input of shape {tuple(x_shape)} "
                                     f"(another batch size): call reset_states() first")
                return self.states
            return None
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(states) != self.N_STATES:
            raise ShapeError(f"{self.describe()}: initial_state must be a list of {self.N_STATES} array(s) of "
                             f"shape (batch, units) = {(B, H)}, got {len(states)}")
        for k, s in enumerate(states):
            s = xp.asarray(s)
            self.check_dtype(s, what=f"initial_state[{k}]")
            if tuple(s.shape) != (B, H):
                raise ShapeError(f"{self.describe()}: initial_state[{k}] must have shape (batch, units) = "
                                 f"{(B, H)} for input of shape {tuple(x_shape)}, got {tuple(s.shape)}")
            self.check_finite(s, what=f"initial_state[{k}]")
            states[k] = s
        return states

    # ---- checks -----------------------------------------------------------------------------------
    def _check_x(self, x):
        self.check_dtype(x)
        if getattr(x, "ndim", None) != 3:
            shape = tuple(getattr(x, "shape", ()))
            hint = " (one sequence? add a batch axis: x[None])" if len(shape) == 2 else ""
            raise ShapeError(f"{self.describe()}: expected a 3-D input (batch, time, features), "
                             f"got shape {shape}{hint}")
        self.maybe_build(x)
        self.check_input(x, last_dim=self.kernel.shape[0])
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ShapeError(f"{self.describe()}: expected at least one sequence and one time step, "
                             f"got shape {tuple(x.shape)}")
        self.check_finite(x)

    def _make_mask(self, mask, lengths, x_shape):
        """The mask in processing order as a ``bptt.Mask``, or None when every step is real."""
        xp = backend.xp
        B, T = x_shape[0], x_shape[1]
        if mask is not None and lengths is not None:
            raise ValueError(f"{self.describe()}: give a mask or lengths, not both")
        context = f" for input of shape {tuple(x_shape)}"
        if lengths is not None:
            lengths = self.check_lengths(lengths, B, T, context)
            mask = xp.arange(T)[None, :] < lengths[:, None]
        elif mask is not None:
            mask = self.check_mask(mask, (B, T), context=context)
        else:
            return None
        if bool(xp.all(mask)):
            return None
        if self.go_backwards:
            mask = mask[:, ::-1]
        return Mask(xp.ascontiguousarray(mask.T), self.kernel.dtype)

    # ---- forward / backward -----------------------------------------------------------------------
    def forward(self, x, mask=None, initial_state=None, lengths=None):
        """x (B, T, D) -> y (B, T, H) or (B, H) [, *states]; see the module docstring."""
        xp = backend.xp
        self._check_x(x)
        B, T, D = x.shape
        mk = self._make_mask(mask, lengths, x.shape)
        init = self._initial_states(initial_state, x.shape)
        loop = self.loop()
        Hs, final = loop.forward(x[:, ::-1] if self.go_backwards else x, init, mk)
        final = [s.copy() for s in final]
        self._cache = (x.shape, mk, loop)
        if self.stateful:
            self.states = [s.copy() for s in final]
        if self.return_sequences:
            # y in processing order (reversed for go_backwards, as Keras); masked steps output 0
            y = xp.empty((B, T, self.units), dtype=Hs.dtype)
            if mk is None:
                y[...] = Hs[1:].transpose(1, 0, 2)
            else:
                xp.multiply(Hs[1:].transpose(1, 0, 2), mk.m.transpose(1, 0, 2), out=y)
        else:
            y = final[0].copy()
        if self.return_state:
            return (y, *final)
        return y

    def backward(self, dy, dstates=None):
        """dL/dy (and dL/d(final states)) -> dL/dx (B, T, D); writes grads and dinitial_state."""
        xp = backend.xp
        if self._cache is None:
            raise RuntimeError(f"{self.describe()}: backward called before forward")
        (B, T, D), mk, loop = self._cache
        H = self.units
        expected = (B, T, H) if self.return_sequences else (B, H)
        if tuple(dy.shape) != expected:
            raise ShapeError(f"{self.describe()}: expected a gradient of shape {expected} (the output's), "
                             f"got {tuple(dy.shape)}")
        dH = xp.empty((T, B, H), dtype=self.kernel.dtype)
        dlast = [xp.zeros((B, H), dtype=self.kernel.dtype) for _ in range(self.N_STATES)]
        if self.return_sequences:
            dH[...] = dy.transpose(1, 0, 2)
            if mk is not None:
                dH *= mk.m  # a masked step's output is the constant 0
        else:
            dH[...] = 0
            dlast[0] += dy
        if dstates is not None:
            dstates = list(dstates) if isinstance(dstates, (list, tuple)) else [dstates]
            if len(dstates) > self.N_STATES:
                raise ShapeError(f"{self.describe()}: got {len(dstates)} state gradients for "
                                 f"{self.N_STATES} state(s)")
            for k, d in enumerate(dstates):
                if d is None:
                    continue
                if tuple(d.shape) != (B, H):
                    raise ShapeError(f"{self.describe()}: dstates[{k}] must have shape (batch, units) = "
                                     f"{(B, H)}, got {tuple(d.shape)}")
                dlast[k] += d
        dX, dinit = loop.backward(dH, dlast, mk)
        dx = xp.empty((B, T, D), dtype=dX.dtype)
        (dx[:, ::-1] if self.go_backwards else dx)[...] = dX.transpose(1, 0, 2)
        self.dinitial_state = [d.copy() for d in dinit]
        return dx


class SimpleRNN(_Recurrent, RNNWeights):
    """Fully connected recurrent layer:  h_t = f(x_t W + h_{t-1} U + b),  f = tanh by default
    (``activation``: tanh, relu, sigmoid, linear).

    Weights: kernel W (D, H), recurrent_kernel U (H, H), bias b (H,).
    Backward, per step (t = T-1 .. 0):
        dh_t = dy_t + dh_t(from t+1),  da_t = dh_t * f'(a_t),  dh_{t-1} = da_t U^T;
    then dW = X^T dA, dU = H_prev^T dA, db = sum dA, dX = dA W^T.
    """


class LSTM(_Recurrent, LSTMWeights):
    """Long short-term memory layer, Keras gate order i, f, c, o.

    Weights: kernel W (D, 4H), recurrent_kernel U (H, 4H), bias b (4H,); with
    ``unit_forget_bias=True`` (Keras default) the forget-gate bias starts at 1.
    Per step, z = x_t W + h_{t-1} U + b split into z_i, z_f, z_c, z_o:
        i = s(z_i), f = s(z_f), g = tanh(z_c), o = s(z_o)
        c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
    Backward per step: dc_t = dc_{t+1} f_{t+1} + dh_t o (1 - tanh(c_t)^2),
        dz_t = [dc g i(1-i), dc c_{t-1} f(1-f), dc i (1-g^2), dh tanh(c_t) o(1-o)],
        dh_{t-1} = dy_{t-1} + dz_t U^T;  then dW = X^T dZ, dU = H_prev^T dZ, db = sum dZ.
    """


class GRU(_Recurrent, GRUWeights):
    """Gated recurrent unit layer, Keras gate order z, r, h.

    Weights: kernel W (D, 3H), recurrent_kernel U (H, 3H), bias (2, 3H) with
    ``reset_after=True`` (row 0 input bias, row 1 recurrent bias; the PyTorch/cuDNN form) or
    (3H,) with ``reset_after=False``. Per step (reset_after=True):
        xz = x_t W + b[0],  hz = h_{t-1} U + b[1]
        z = s(xz_z + hz_z),  r = s(xz_r + hz_r),  hh = tanh(xz_h + r * hz_h)
        h_t = z * h_{t-1} + (1 - z) * hh  =  hh + z * (h_{t-1} - hh)
    reset_after=False:  hh = tanh(x_t W_h + (r * h_{t-1}) U_h + b_h).
    Backward: ``steps.gru_step_backward`` per step, summed over the steps.
    """
