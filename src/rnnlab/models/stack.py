"""Parts the task models share: a stacked (bidirectional) recurrent encoder and masked pooling.

``RecurrentStack(units, layers, cell, bidirectional, dropout)``: x (B, T, D) -> y (B, T, H')
with H' = units (2 * units when bidirectional, the two directions concatenated); every layer
returns its whole sequence and its final states; inverted dropout (rate ``dropout``) sits
between layers. ``forward(x, mask=None, initial_state=None)``: ``initial_state`` lists, per
layer, the state arrays (LSTM: h, c; bidirectional: forward's then backward's); the final
states are left in ``final_states`` in the same layout, so a unidirectional stack can be run
a step at a time (the state of step t is the initial state of step t+1).
``backward(dy, dstates=None)`` returns dL/dx and leaves dL/d(initial states) in
``dinitial_state`` (what a model whose initial state is computed, a captioner, needs).

``SequencePooling(mode, bidirectional=False)``: y (B, T, H), mask (B, T) -> (B, H), over the
real (mask True) steps of each row only:

    last:  y[b, t_b]                t_b the row's last real step
    mean:  sum_t m_bt y_bt / sum_t m_bt
    max:   max over real t of y_bt  (per feature; the gradient goes to the arg max)

With ``bidirectional=True`` (y = [forward; backward] halves), "last" takes the forward half at
t_b and the backward half at step 0: each direction's state after reading the whole sequence.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .. import validate
from ..layers import Bidirectional, Dropout, N_STATES, layer_class
from ..layers.base import Layer, ShapeError

POOLINGS = ("last", "mean", "max")


def part_seeds(seed, n: int) -> list:
    """n seeds drawn from a model's seed (None: all None): parts of equal shape must differ.

    The one seeding scheme of the models: each part takes its own index of this draw, which is
    prefix-stable (the first k of ``part_seeds(s, n)`` are ``part_seeds(s, k)``), so a part added
    at the end leaves the weights of the others as they were."""
    if seed is None:
        return [None] * n
    return np.random.default_rng(seed).integers(0, 2**31 - 1, size=n).tolist()


def recurrent_layers(cell: str, units: int, seeds: list, input_dim: int | None = None,
                     bidirectional: bool = False, name: str | None = None, **options) -> list:
    """The one builder of a stack of recurrent layers: ``len(seeds)`` layers of ``cell`` (with its
    ``options``: initializers, ``activation`` of a SimpleRNN, ``reset_after`` of a GRU ...), layer i
    seeded ``seeds[i]``, each returning its whole sequence and its final states; with
    ``bidirectional`` each reads both ways (``Bidirectional``, the directions concatenated).
    Given ``input_dim``, layer 0 is built for it and each later layer for the one below; ``name``
    names them ``{name}_{cell}_{i}`` (``{name}_bidirectional_{i}``)."""
    layers = []
    for i, seed in enumerate(seeds):
        rnn = layer_class(cell)(units, return_sequences=True, return_state=True, seed=seed,
                                name=None if name is None else f"{name}_{cell}_{i}", **options)
        if bidirectional:
            rnn = Bidirectional(rnn, name=None if name is None else f"{name}_bidirectional_{i}")
        if input_dim is not None:
            rnn.build((None, input_dim if i == 0 else units * (2 if bidirectional else 1)))
        layers.append(rnn)
    return layers


def stack_forward(rnns, drops, x, mask=None, initial_state=None):
    """x through ``drops[i]`` (None: no dropout there) then ``rnns[i]`` for each layer i, from
    ``initial_state[i]`` (None: zeros): (the top layer's output, each layer's final states)."""
    finals = []
    for i, (rnn, drop) in enumerate(zip(rnns, drops)):
        if drop is not None:
            x = drop.forward(x)
        x, *states = rnn.forward(x, mask=mask, initial_state=None if initial_state is None else initial_state[i])
        finals.append(states)
    return x, finals


def stack_backward(rnns, drops, dy, dstates=None):
    """Back through ``stack_forward``: dL/dy of the top output (and each layer's dL/d(final
    states), or None) -> (dL/dx, each layer's dL/d(initial states))."""
    dinit = [None] * len(rnns)
    for i in reversed(range(len(rnns))):
        dy = rnns[i].backward(dy, None if dstates is None else dstates[i])
        dinit[i] = list(rnns[i].dinitial_state)
        if drops[i] is not None:
            dy = drops[i].backward(dy)
    return dy, dinit


class RecurrentStack(Layer):
    """``layers`` recurrent layers of ``units`` each (see the module docstring)."""

    def __init__(self, units: int, layers: int = 1, cell: str = "lstm", bidirectional: bool = False,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.units = validate.positive_int(owner, "units", units)
        self.layers = validate.positive_int(owner, "layers", layers)
        self.cell = validate.cell(owner, "cell", cell)
        self.bidirectional = validate.flag(owner, "bidirectional", bidirectional)
        self.dropout = validate.rate(owner, "dropout", dropout)
        seeds = part_seeds(self.seed, 2 * self.layers)
        self.rnns = recurrent_layers(self.cell, self.units, seeds[:self.layers], bidirectional=self.bidirectional)
        self.drops = [Dropout(self.dropout, seed=seeds[self.layers + i])
                      for i in range(self.layers - 1)] if self.dropout > 0 else []
        self.sublayers = [*self.rnns, *self.drops]
        self.n_states = N_STATES[self.cell] * (2 if self.bidirectional else 1)  # arrays per layer
        self.final_states = None
        self.dinitial_state = None

    @property
    def output_units(self) -> int:
        return self.units * (2 if self.bidirectional else 1)

    def build(self, input_shape):
        super().build(input_shape)
        D = input_shape[-1]
        for i, rnn in enumerate(self.rnns):
            if not rnn.built:
                rnn.build((None, D if i == 0 else self.output_units))

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.output_units)

    def forward(self, x, mask=None, initial_state=None):
        self.maybe_build(x)
        if initial_state is not None and len(initial_state) != self.layers:
            raise ShapeError(f"{self.describe()}: initial_state must hold one list of states per layer "
                             f"({self.layers}), got {len(initial_state)}")
        x, self.final_states = stack_forward(self.rnns, self._drop_before, x, mask, initial_state)
        return x

    def backward(self, dy, dstates=None):
        dx, self.dinitial_state = stack_backward(self.rnns, self._drop_before, dy, dstates)
        return dx

    @property
    def _drop_before(self) -> list:
        """Each layer's dropout on its input: none before the first."""
        return [None, *self.drops] if self.drops else [None] * self.layers

    def get_config(self):
        return {**super().get_config(), "units": self.units, "layers": self.layers, "cell": self.cell,
                "bidirectional": self.bidirectional, "dropout": self.dropout}


class SequencePooling(Layer):
    """(B, T, H) and a (B, T) mask -> (B, H) by "last", "mean" or "max" over the real steps."""

    def __init__(self, mode: str = "last", bidirectional: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.mode = validate.choice(self.describe(), "pooling", mode, POOLINGS)
        self.bidirectional = validate.flag(self.describe(), "bidirectional", bidirectional)
        self._cache = None

    def compute_output_shape(self, input_shape):
        return (input_shape[-1],)

    def forward(self, y, mask=None, **kwargs):
        xp = backend.xp
        self.check_dtype(y)
        self.check_input(y, ndim=3, layout="(batch, time, features)")
        self.maybe_build(y)
        B, T, H = y.shape
        mask = xp.ones((B, T), dtype=bool) if mask is None else self.check_mask(mask, (B, T))
        counts = mask.sum(axis=1)
        if bool((counts == 0).any()):
            row = int(xp.flatnonzero(counts == 0)[0])
            raise ValueError(f"{self.describe()}: row {row} of the batch has no real step to pool")
        rows = xp.arange(B)
        if self.mode == "last":
            last = counts - 1   # right padding: the last real step
            if self.bidirectional:
                half = H // 2
                out = xp.concatenate([y[rows, last, :half], y[:, 0, half:]], axis=1)
            else:
                out = y[rows, last]
            self._cache = (y.shape, last)
        elif self.mode == "mean":
            m = mask[..., None].astype(y.dtype)
            out = (y * m).sum(axis=1) / counts[:, None].astype(y.dtype)
            self._cache = (y.shape, m / counts[:, None, None].astype(y.dtype))
        else:
            masked = xp.where(mask[..., None], y, -xp.inf)
            arg = masked.argmax(axis=1)                                  # (B, H)
            out = xp.take_along_axis(y, arg[:, None, :], axis=1)[:, 0]
            self._cache = (y.shape, arg)
        return out

    def backward(self, dout):
        xp = backend.xp
        shape, saved = self._cache
        B, T, H = shape
        dy = xp.zeros(shape, dtype=dout.dtype)
        rows = xp.arange(B)
        if self.mode == "last":
            if self.bidirectional:
                half = H // 2
                dy[rows, saved, :half] = dout[:, :half]
                dy[:, 0, half:] += dout[:, half:]
            else:
                dy[rows, saved] = dout
        elif self.mode == "mean":
            dy[...] = dout[:, None, :] * saved
        else:
            xp.put_along_axis(dy, saved[:, None, :], dout[:, None, :], axis=1)
        return dy

    def get_config(self):
        return {**super().get_config(), "mode": self.mode, "bidirectional": self.bidirectional}
