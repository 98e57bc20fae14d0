"""Property-based tests (hypothesis) of the recurrent layers over random shapes, cells, masks
and lengths, including rows that are all padding (length 0).

Properties (each over SimpleRNN, LSTM, GRU with both ``reset_after`` forms, with the NumPy
loops and, where numba is installed, the fused kernels):

- output shapes as documented (``return_sequences``/``return_state``, Bidirectional merge modes);
- a masked step never changes the state: a row with any mask equals the same layer run on that
  row's real steps alone (outputs at real steps, final states), its masked outputs are 0, and a
  row with no real step keeps its initial state;
- padded positions do not matter: garbage there changes neither the outputs nor the final
  states, and their input gradient is 0;
- ``lengths`` gives exactly what the equivalent mask gives, forward and backward;
- backward returns dx of x's shape, gradients of the parameters' shapes and dL/d(initial
  states) of theirs, all finite;
- float64 backward equals a central finite difference along one random direction of
  (x, every parameter, the initial states).

Derandomized (the same examples every run) with few examples each, so CI stays fast;
``RNNLAB_PROPERTY_EXAMPLES=500`` runs that many fresh random examples per property instead.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rnnlab
from rnnlab import backend
from rnnlab import layers as L
from rnnlab import validate
from rnnlab.layers import fast
from rnnlab.layers.fast import fused
from rnnlab.layers.kinds import N_STATES, layer_class
from rnnlab.models.stack import SequencePooling

# RNNLAB_PROPERTY_EXAMPLES=500 searches harder (new random examples each run), for a bug hunt
_HUNT = int(os.environ.get("RNNLAB_PROPERTY_EXAMPLES", "0"))
SETTINGS = settings(max_examples=_HUNT or 25, deadline=None, derandomize=not _HUNT, database=None,
                    suppress_health_check=[HealthCheck.too_slow])

# (kind, the kind's own option): the four cells the brief names
CELLS = [("rnn", {}), ("lstm", {}), ("gru", {"reset_after": True}), ("gru", {"reset_after": False})]
MERGE_MODES = ["concat", "sum", "ave", "mul", None]
FUSED_CHOICES = [False, True] if fused.numba is not None else [False]


@contextlib.contextmanager
def floatx(dtype):
    previous = backend.floatx()
    rnnlab.set_floatx(dtype)
    try:
        yield
    finally:
        rnnlab.set_floatx(previous)


@dataclass
class Case:
    B: int
    T: int
    D: int
    H: int
    cell: tuple
    lengths: np.ndarray      # (B,) in [0, T]
    mask: np.ndarray         # (B, T) bool, any pattern (holes, all False rows)
    fused: bool
    transposed: bool         # the per-step product's orientation (forced: no timing, deterministic)
    block_steps: int         # steps per block of backward factors (fast.FastLoop.FACTOR_BLOCK)
    chunk_steps: int | None  # steps per chunk of the input projection (None: one GEMM for all)
    seed: int

    def make(self, bidirectional=False, merge_mode="concat", **kwargs):
        kind, options = self.cell
        layer = layer_class(kind)(self.H, seed=self.seed, **options, **kwargs)
        if bidirectional:
            layer = L.Bidirectional(layer, merge_mode=merge_mode)
        for sub in layer.sublayers if bidirectional else [layer]:
            # the fast loop's paths (rnnlab.layers.fast), chosen per example rather than by size
            loop = fast.loop_for(sub)
            loop.FUSED, loop.TRANSPOSED_PRODUCTS = self.fused, self.transposed
            gate_values = self.B * sub.GATES * self.H
            loop.FACTOR_BLOCK = self.block_steps * gate_values
            if self.chunk_steps is not None:
                loop.PROJECTION_CHUNK, loop.PROJECTION_MIN_ROWS = self.chunk_steps * gate_values, 1
        return layer

    @property
    def n_states(self):
        return N_STATES[self.cell[0]]

    def rng(self, k=0):
        return np.random.default_rng([self.seed, k])

    def x(self, k=0):
        return self.rng(k).normal(size=(self.B, self.T, self.D))

    def initial_state(self, n, k=1):
        rng = self.rng(k)
        return [rng.normal(scale=0.5, size=(self.B, self.H)) for _ in range(n)]


def _row_mask(draw, T):
    kind = draw(st.sampled_from(["all", "none", "any"]))
    if kind == "all":
        return [True] * T
    if kind == "none":
        return [False] * T
    return draw(st.lists(st.booleans(), min_size=T, max_size=T))


@st.composite
def cases(draw, max_b=3, max_t=6):
    B, T = draw(st.integers(1, max_b)), draw(st.integers(1, max_t))
    lengths = [draw(st.one_of(st.just(0), st.just(T), st.integers(0, T))) for _ in range(B)]
    mask = [_row_mask(draw, T) for _ in range(B)]
    return Case(B=B, T=T, D=draw(st.integers(1, 4)), H=draw(st.integers(1, 4)), cell=draw(st.sampled_from(CELLS)),
                lengths=np.array(lengths, dtype=np.int64), mask=np.array(mask, dtype=bool).reshape(B, T),
                fused=draw(st.sampled_from(FUSED_CHOICES)), transposed=draw(st.booleans()),
                block_steps=draw(st.integers(1, T)), chunk_steps=draw(st.one_of(st.none(), st.integers(1, T))),
                seed=draw(st.integers(0, 2**16)))


def _as_tuple(out):
    return out if isinstance(out, tuple) else (out,)


def _padding(case):
    return np.arange(case.T)[None, :] >= case.lengths[:, None]


# ---- shapes --------------------------------------------------------------------------------------------
@SETTINGS
@given(case=cases(), return_sequences=st.booleans(), return_state=st.booleans(), go_backwards=st.booleans())
def test_output_shapes(case, return_sequences, return_state, go_backwards):
    with floatx("float32"):
        layer = case.make(return_sequences=return_sequences, return_state=return_state, go_backwards=go_backwards)
        out = _as_tuple(layer.forward(case.x().astype(np.float32), lengths=case.lengths))
        y_shape = (case.B, case.T, case.H) if return_sequences else (case.B, case.H)
        expected = [y_shape] + ([(case.B, case.H)] * case.n_states if return_state else [])
        assert [o.shape for o in out] == expected
        assert all(o.dtype == np.float32 for o in out)
        declared = layer.compute_output_shape((case.T, case.D))
        declared = declared if return_state else [declared]
        assert [(case.B, *s) for s in declared] == expected


@SETTINGS
@given(case=cases(), merge_mode=st.sampled_from(MERGE_MODES), return_sequences=st.booleans(),
       return_state=st.booleans())
def test_bidirectional_output_shapes(case, merge_mode, return_sequences, return_state):
    with floatx("float32"):
        layer = case.make(bidirectional=True, merge_mode=merge_mode, return_sequences=return_sequences,
                          return_state=return_state)
        out = _as_tuple(layer.forward(case.x().astype(np.float32), mask=case.mask))
        lead = (case.B, case.T) if return_sequences else (case.B,)
        ys = [(*lead, 2 * case.H)] if merge_mode == "concat" else [(*lead, case.H)] * (1 if merge_mode else 2)
        expected = ys + ([(case.B, case.H)] * 2 * case.n_states if return_state else [])
        assert [o.shape for o in out] == expected
        declared = layer.compute_output_shape((case.T, case.D))
        declared = declared if isinstance(declared, list) else [declared]
        assert [(case.B, *s) for s in declared] == expected


# ---- masking -------------------------------------------------------------------------------------------
@SETTINGS
@given(case=cases(), go_backwards=st.booleans())
def test_a_masked_step_never_changes_the_state(case, go_backwards):
    """Any mask (holes, all-masked rows): each row equals the layer run on its real steps alone."""
    with floatx("float64"):
        layer = case.make(return_sequences=True, return_state=True, go_backwards=go_backwards)
        x, init = case.x(), case.initial_state(case.n_states)
        y, *final = layer.forward(x, mask=case.mask, initial_state=init)
        for b in range(case.B):
            real = np.flatnonzero(case.mask[b])
            in_y = case.mask[b, ::-1] if go_backwards else case.mask[b]   # y is in processing order
            assert not y[b, ~in_y].any(), "a masked step must output 0"
            if real.size == 0:
                for k in range(case.n_states):   # no real step: the initial state, untouched
                    np.testing.assert_array_equal(final[k][b], init[k][b])
                continue
            y_b, *final_b = layer.forward(x[b:b + 1, real], initial_state=[s[b:b + 1] for s in init])
            np.testing.assert_allclose(y[b, in_y], y_b[0], rtol=1e-10, atol=1e-12)
            for k in range(case.n_states):
                np.testing.assert_allclose(final[k][b], final_b[k][0], rtol=1e-10, atol=1e-12)


@SETTINGS
@given(case=cases(), bidirectional=st.booleans(), go_backwards=st.booleans(),
       merge_mode=st.sampled_from(MERGE_MODES), return_sequences=st.booleans())
def test_padded_positions_change_nothing(case, bidirectional, go_backwards, merge_mode, return_sequences):
    """Garbage in the padding (t >= length) changes no output and no final state, and the
    input gradient there is 0."""
    with floatx("float64"):
        layer = case.make(bidirectional, merge_mode, return_sequences=return_sequences, return_state=True,
                          go_backwards=go_backwards)   # a go_backwards layer in a Bidirectional too
        x = case.x()
        garbage = x.copy()
        pad = _padding(case)
        garbage[pad] = 50.0 * case.rng(7).normal(size=(int(pad.sum()), case.D))
        clean = [o.copy() for o in _as_tuple(layer.forward(x, lengths=case.lengths))]
        dirty = _as_tuple(layer.forward(garbage, lengths=case.lengths))
        for a, b in zip(clean, dirty):
            np.testing.assert_array_equal(a, b)
        n_y = 2 if bidirectional and merge_mode is None else 1
        rng = case.rng(8)
        dy = [rng.normal(size=o.shape) for o in dirty[:n_y]]
        dstates = [rng.normal(size=o.shape) for o in dirty[n_y:]]
        dx = layer.backward(dy[0] if n_y == 1 else tuple(dy), dstates)
        assert not dx[pad].any(), "the padding must get no gradient"


@SETTINGS
@given(case=cases(), bidirectional=st.booleans(), return_sequences=st.booleans())
def test_lengths_equal_the_equivalent_mask(case, bidirectional, return_sequences):
    with floatx("float64"):
        layer = case.make(bidirectional, return_sequences=return_sequences, return_state=True)
        x = case.x()
        mask = ~_padding(case)
        by_lengths = [o.copy() for o in layer.forward(x, lengths=case.lengths)]
        dy = [case.rng(3).normal(size=o.shape) for o in by_lengths]
        dx_lengths = layer.backward(dy[0], dy[1:])
        grads_lengths = [g.copy() for g in layer.grads]
        by_mask = layer.forward(x, mask=mask)
        for a, b in zip(by_lengths, by_mask):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(layer.backward(dy[0], dy[1:]), dx_lengths)
        for a, b in zip(layer.grads, grads_lengths):
            np.testing.assert_array_equal(a, b)


@SETTINGS
@given(case=cases(), split=st.integers(1, 5), go_backwards=st.booleans())
def test_stateful_chunks_equal_one_long_run(case, split, go_backwards):
    """A stateful layer fed x[:, :s] then x[:, s:] gives what one call over x gives (with
    go_backwards: the chunks in reverse order)."""
    with floatx("float64"):
        x = case.x()
        s = min(split, case.T)
        long_run = case.make(return_sequences=True, return_state=True, go_backwards=go_backwards)
        y, *final = long_run.forward(x)
        stateful = case.make(return_sequences=True, return_state=True, go_backwards=go_backwards, stateful=True)
        chunks = [x[:, s:], x[:, :s]] if go_backwards else [x[:, :s], x[:, s:]]
        outs = [stateful.forward(c) for c in chunks if c.shape[1]]
        np.testing.assert_allclose(np.concatenate([o[0] for o in outs], axis=1), y, rtol=1e-10, atol=1e-12)
        for k in range(case.n_states):
            np.testing.assert_allclose(outs[-1][1 + k], final[k], rtol=1e-10, atol=1e-12)


# ---- backward ------------------------------------------------------------------------------------------
def _loss_and_grads(layer, x, init, kwargs, weights=None):
    """L = sum_i <w_i, out_i> over every output (y and the states), and its backward."""
    out = _as_tuple(layer.forward(x, initial_state=init, **kwargs))
    if weights is None:
        rng = np.random.default_rng(11)
        weights = [rng.normal(size=o.shape) for o in out]
    loss = float(sum((o * w).sum() for o, w in zip(out, weights)))
    return loss, weights, out


@SETTINGS
@given(case=cases(), bidirectional=st.booleans(), return_sequences=st.booleans(), go_backwards=st.booleans(),
       merge_mode=st.sampled_from(MERGE_MODES), masking=st.sampled_from(["none", "mask", "lengths"]))
def test_backward_shapes_finite(case, bidirectional, return_sequences, go_backwards, merge_mode, masking):
    with floatx("float32"):
        layer = case.make(bidirectional, merge_mode, return_sequences=return_sequences, return_state=True,
                          go_backwards=go_backwards and not bidirectional)
        x = case.x().astype(np.float32)
        kwargs = {"mask": case.mask} if masking == "mask" else {"lengths": case.lengths} if masking == "lengths" else {}
        n = case.n_states * (2 if bidirectional else 1)
        init = [s.astype(np.float32) for s in case.initial_state(n)]
        out = _as_tuple(layer.forward(x, initial_state=init, **kwargs))
        n_y = len(out) - n
        rng = case.rng(5)
        dy = [rng.normal(size=o.shape).astype(np.float32) for o in out]
        dx = layer.backward(dy[0] if n_y == 1 else tuple(dy[:n_y]), dy[n_y:])
        assert dx.shape == x.shape and np.isfinite(dx).all()
        assert [g.shape for g in layer.grads] == [p.shape for p in layer.params]
        assert all(np.isfinite(g).all() for g in layer.grads)
        assert [d.shape for d in layer.dinitial_state] == [s.shape for s in init]
        assert all(np.isfinite(d).all() for d in layer.dinitial_state)


@SETTINGS
@given(case=cases(max_b=2, max_t=4), bidirectional=st.booleans(), return_sequences=st.booleans(),
       go_backwards=st.booleans(), merge_mode=st.sampled_from(MERGE_MODES),
       masking=st.sampled_from(["none", "mask", "lengths"]))
def test_backward_matches_a_directional_finite_difference(case, bidirectional, return_sequences, go_backwards,
                                                          merge_mode, masking):
    """<grad L, u> from backward equals (L(theta + eps u) - L(theta - eps u)) / (2 eps) for one
    random direction u over x, every parameter and the initial states (float64)."""
    with floatx("float64"):
        layer = case.make(bidirectional, merge_mode, return_sequences=return_sequences, return_state=True,
                          go_backwards=go_backwards and not bidirectional)
        kwargs = {"mask": case.mask} if masking == "mask" else {"lengths": case.lengths} if masking == "lengths" else {}
        n = case.n_states * (2 if bidirectional else 1)
        x, init = case.x(), case.initial_state(n)
        _, weights, out = _loss_and_grads(layer, x, init, kwargs)
        n_y = len(out) - n
        dx = layer.backward(weights[0] if n_y == 1 else tuple(weights[:n_y]), weights[n_y:])
        grads, dinit = [g.copy() for g in layer.grads], [d.copy() for d in layer.dinitial_state]

        rng = case.rng(9)
        u_x, u_init = rng.normal(size=x.shape), [rng.normal(size=s.shape) for s in init]
        u_params = [rng.normal(size=p.shape) for p in layer.params]
        analytic = float((dx * u_x).sum() + sum((g * u).sum() for g, u in zip(grads, u_params))
                         + sum((d * u).sum() for d, u in zip(dinit, u_init)))

        eps = 1e-6
        originals = [p.copy() for p in layer.params]

        def loss_at(sign):
            for p, p0, u in zip(layer.params, originals, u_params):
                p[...] = p0 + sign * eps * u
            moved = [s + sign * eps * u for s, u in zip(init, u_init)]
            return _loss_and_grads(layer, x + sign * eps * u_x, moved, kwargs, weights)[0]

        numeric = (loss_at(+1) - loss_at(-1)) / (2 * eps)
        for p, p0 in zip(layer.params, originals):
            p[...] = p0
        assert abs(numeric - analytic) <= 1e-6 * (abs(numeric) + abs(analytic)) + 1e-8, (numeric, analytic)


# ---- the regressions these properties found ------------------------------------------------------------
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_all_rows_of_length_zero(kind):
    """Every row padding: the outputs are 0 and the final states the initial ones."""
    with floatx("float64"):
        layer = layer_class(kind)(3, return_sequences=True, return_state=True, seed=0)
        init = [np.full((2, 3), 0.25) for _ in range(N_STATES[kind])]
        y, *final = layer.forward(np.ones((2, 4, 2)), lengths=np.array([0, 0]), initial_state=init)
        assert not y.any()
        for f, s in zip(final, init):
            np.testing.assert_array_equal(f, s)
        dx = layer.backward(np.ones_like(y), [np.ones((2, 3))] * N_STATES[kind])
        assert not dx.any()
        for d in layer.dinitial_state:
            np.testing.assert_array_equal(d, np.ones((2, 3)))


# ---- the shared validators ------------------------------------------------------------------------------
INT_TYPES = [int, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@SETTINGS
@given(n=st.integers(1, 127), int_type=st.sampled_from(INT_TYPES))
def test_positive_int_accepts_every_integer_type(n, int_type):
    out = validate.positive_int("LSTM", "units", int_type(n))
    assert out == n and type(out) is int


@SETTINGS
@given(value=st.one_of(st.floats(allow_nan=True), st.booleans(), st.text(max_size=3), st.none(),
                       st.integers(max_value=0), st.complex_numbers()))
def test_positive_int_refuses_everything_else(value):
    with pytest.raises(validate.ArgumentError, match=r"^LSTM: units must be a positive integer, got "):
        validate.positive_int("LSTM", "units", value)


@SETTINGS
@given(value=st.floats(allow_nan=True, allow_infinity=True))
def test_rate_is_exactly_the_finite_floats_in_0_1(value):
    if np.isfinite(value) and 0.0 <= value < 1.0:
        assert validate.rate("Dropout", "rate", value) == value
    else:
        with pytest.raises(ValueError, match=r"^Dropout: rate must"):
            validate.rate("Dropout", "rate", value)


# ---- the task models' pooling over masked steps ---------------------------------------------------------
@SETTINGS
@given(case=cases(), mode=st.sampled_from(["last", "mean", "max"]), bidirectional=st.booleans())
def test_pooling_reads_only_the_real_steps(case, mode, bidirectional):
    """SequencePooling over right-padded rows (length >= 1) equals the pooling of each row's real
    steps, garbage in the padding changes nothing, and the padding gets no gradient."""
    lengths = np.maximum(case.lengths, 1)
    pad = np.arange(case.T)[None, :] >= lengths[:, None]
    F = 2 * case.H if bidirectional else case.H
    y = case.rng(0).normal(size=(case.B, case.T, F))
    garbage = y.copy()
    garbage[pad] = 1e3 * case.rng(1).normal(size=(int(pad.sum()), F))
    pool = SequencePooling(mode, bidirectional=bidirectional)
    pooled = pool.forward(garbage, mask=~pad)
    for b in range(case.B):
        real = y[b, :lengths[b]]
        if mode == "mean":
            expected = real.mean(axis=0)
        elif mode == "max":
            expected = real.max(axis=0)
        elif bidirectional:   # forward half after the last real step, backward half after step 0
            expected = np.concatenate([real[-1, :case.H], real[0, case.H:]])
        else:
            expected = real[-1]
        np.testing.assert_allclose(pooled[b], expected, rtol=1e-12, atol=1e-12)
    dy = pool.backward(case.rng(2).normal(size=pooled.shape))
    assert dy.shape == y.shape and not dy[pad].any()
