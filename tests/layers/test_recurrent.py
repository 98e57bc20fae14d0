"""Recurrent layers: float64 gradient checks for every option, the fast loop against the cells,
masks, states, Bidirectional, stacking, Keras parameter counts, parameter sharing, bad input."""
import threading

import numpy as np
import pytest

from gradcheck import check_layer_gradients, numerical_grad, rel_error
from rnnlab.layers import (GRU, LSTM, Bidirectional, GRUCell, LSTMCell, RNNCell, ShapeError, SimpleRNN,
                           layer_from_dict, layer_to_dict)

# every test on each loop: the reference loop, the NumPy fast loops, the fused numba kernels per step, the compiled loops
pytestmark = pytest.mark.usefixtures("both_kernel_paths")

KINDS = ["rnn", "lstm", "gru", "gru_reset_before"]
B, T, D, H = 3, 5, 4, 3
MASK = np.array([[1, 1, 1, 0, 0],      # right padding
                 [1, 0, 1, 1, 1],      # a masked step in the middle: the state is kept over it
                 [0, 0, 0, 0, 0]],     # an empty sequence: the output is the initial state
                dtype=bool)


def make(kind, units=H, **kwargs):
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("bias_initializer", "uniform:0.5")
    if kind == "rnn":
        return SimpleRNN(units, **kwargs)
    if kind == "lstm":
        return LSTM(units, **kwargs)
    if kind == "gru":
        return GRU(units, **kwargs)
    return GRU(units, reset_after=False, **kwargs)


def cell_for(layer):
    """The single-step cell with the layer's weights."""
    if isinstance(layer, SimpleRNN):
        cell = RNNCell(layer.units, activation=layer.activation)
    elif isinstance(layer, LSTM):
        cell = LSTMCell(layer.units)
    else:
        cell = GRUCell(layer.units, reset_after=layer.reset_after)
    cell.build((layer.kernel.shape[0],))
    cell.set_weights(layer.get_weights())
    return cell


def x_data(seed=0, shape=(B, T, D)):
    return np.random.default_rng(seed).standard_normal(shape)


# ---- gradient checks (float64, relative error < 1e-6) ------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("options", [
    {"return_sequences": True},
    {"return_sequences": False},
    {"return_sequences": True, "return_state": True},       # gradients flow into the final states
    {"return_sequences": False, "return_state": True, "go_backwards": True},
])
def test_layer_gradients(float64, kind, options):
    errors = check_layer_gradients(make(kind, **options), x_data())
    assert set(errors) == {"param0", "param1", "param2", "input"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("how", ["mask", "lengths", "mask_go_backwards"])
def test_layer_gradients_with_mask_or_lengths(float64, kind, how):
    layer = make(kind, return_sequences=True, return_state=True, go_backwards=how.endswith("backwards"))
    kwargs = {"lengths": np.array([5, 2, 0])} if how == "lengths" else {"mask": MASK}
    check_layer_gradients(layer, x_data(1), kwargs)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("mask", [None, MASK, np.array([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], bool)])
def test_backward_in_blocks_of_steps_is_exact(float64, monkeypatch, kind, mask):
    """LSTM and GRU compute their backward factors a block of steps at a time; blocks of 2 steps
    over T = 5 (2 + 2 + 1) must give the gradients of one block over all steps, and pass the check."""
    from rnnlab.layers.fast.loops import LOOPS
    cls = LSTM if kind == "lstm" else GRU

    def run():
        layer = make(kind, return_sequences=True, return_state=True)
        y, *states = layer.forward(x_data(2), mask=mask)
        dy = np.random.default_rng(3).standard_normal(y.shape)
        dx = layer.backward(dy, [np.ones_like(h) * (-1) ** k for k, h in enumerate(states)])
        return [dx, *layer.dinitial_state, *layer.grads]

    whole = run()
    monkeypatch.setattr(LOOPS[kind], "FACTOR_BLOCK", 2 * B * cls.GATES * H)   # the fast loop's blocks
    blocked = run()
    for a, b in zip(whole, blocked):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13)
    check_layer_gradients(make(kind, return_sequences=True, return_state=True), x_data(1),
                          {"mask": mask} if mask is not None else {})


@pytest.mark.parametrize("kind,options", [("rnn", {}), ("lstm", {}), ("gru", {}), ("gru", {"reset_after": False})])
@pytest.mark.parametrize("mask", [None, MASK])
def test_transposed_step_products_are_exact(float64, monkeypatch, kind, options, mask):
    """The per-step products h U and dz U^T may run as (U^T h^T)^T and (U dz^T)^T (whichever is
    faster here); forcing each orientation must give the same outputs and gradients, and the
    transposed one must pass the gradient check too."""
    from rnnlab.layers.fast import FastLoop

    def run():
        layer = make(kind, return_sequences=True, return_state=True, **options)
        y, *states = layer.forward(x_data(2), mask=mask)
        dy = np.random.default_rng(3).standard_normal(y.shape)
        dx = layer.backward(dy, [np.ones_like(h) * (-1) ** k for k, h in enumerate(states)])
        return [y, *states, dx, *layer.dinitial_state, *layer.grads]

    monkeypatch.setattr(FastLoop, "TRANSPOSED_PRODUCTS", False)
    plain = run()
    monkeypatch.setattr(FastLoop, "TRANSPOSED_PRODUCTS", True)
    transposed = run()
    for a, b in zip(plain, transposed):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13)
    check_layer_gradients(make(kind, return_sequences=True, return_state=True, **options), x_data(1),
                          {"mask": mask} if mask is not None else {})


def test_orientation_follows_the_shapes(monkeypatch, both_kernel_paths):
    """The per-step products' orientation is the rule's answer for each product shape
    (``orientation.py``), asked of the layer's loops, or on the compiled path of the compiled
    loops for their weight layouts (then the layer's own products are never asked for); the
    reference loop has no such choice."""
    from rnnlab.layers.fast import base, compiled

    calls, layouts = [], []
    monkeypatch.setattr(base, "transposed_products", lambda *shape: calls.append(shape) or True)
    monkeypatch.setattr(compiled, "compiled_weight_transposed", lambda *shape: layouts.append(shape) or True)
    layer = LSTM(3, return_sequences=True, seed=0)
    layer.forward(np.ones((2, 4, 5), np.float32))
    layer.backward(np.ones((2, 4, 3), np.float32))
    if both_kernel_paths == "reference":
        assert calls == [] and layouts == []
    elif both_kernel_paths == "compiled":
        assert calls == [] and sorted(layouts) == [("backward", 2, 3, 12), ("forward", 2, 3, 12)]
    else:
        # forward: h (2, 3) @ U (3, 12); backward: dz (2, 12) @ U^T (12, 3)
        assert sorted(set(calls)) == [(2, 3, 12), (2, 12, 3)] and layouts == []


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "linear"])
def test_simple_rnn_activation_gradients(float64, activation):
    check_layer_gradients(make("rnn", activation=activation, return_sequences=True), x_data(2), {"mask": MASK})


@pytest.mark.parametrize("kind", KINDS)
def test_initial_state_gradient(float64, kind):
    """dinitial_state against central differences, with a mask and state gradients."""
    rng = np.random.default_rng(3)
    layer = make(kind, return_sequences=True, return_state=True)
    x = x_data(3)
    init = [rng.standard_normal((B, H)) for _ in range(layer.N_STATES)]
    out = layer.forward(x, initial_state=init, mask=MASK)
    weights = [rng.standard_normal(o.shape) for o in out]

    def loss():
        res = layer.forward(x, initial_state=init, mask=MASK)
        return float(sum((r * w).sum() for r, w in zip(res, weights)))

    loss()
    layer.backward(weights[0], weights[1:])
    assert len(layer.dinitial_state) == layer.N_STATES
    for k, s in enumerate(init):
        assert rel_error(layer.dinitial_state[k], numerical_grad(loss, s)) < 1e-6
    check_layer_gradients(layer, x, {"initial_state": init, "mask": MASK})


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_stateful_gradients_treat_carried_state_as_constant(float64, kind):
    layer = make(kind, return_sequences=True, stateful=True)
    layer.forward(x_data(4))                       # leaves a carried state
    carried = [s.copy() for s in layer.states]
    x = x_data(5)
    out = layer.forward(x)
    weights = np.random.default_rng(0).standard_normal(out.shape)

    def loss():
        layer.reset_states(carried)              # every evaluation starts from the same carried state
        return float((layer.forward(x) * weights).sum())

    loss()
    dx = layer.backward(weights)
    analytic = [g.copy() for g in layer.grads]
    for a, p in zip(analytic, layer.params):
        assert rel_error(a, numerical_grad(loss, p)) < 1e-6
    assert rel_error(dx, numerical_grad(loss, x)) < 1e-6
    # the gradient with respect to the carried state is computed, but goes nowhere
    assert rel_error(layer.dinitial_state[0], numerical_grad(loss, carried[0])) < 1e-6


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "ave", "mul"])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_bidirectional_gradients_every_merge_mode_with_mask(float64, kind, merge_mode):
    layer = Bidirectional(make(kind, return_sequences=True), merge_mode=merge_mode)
    errors = check_layer_gradients(layer, x_data(6), {"mask": MASK})
    assert len(errors) == 7  # 3 forward + 3 backward weights + input


@pytest.mark.parametrize("return_sequences", [True, False])
def test_bidirectional_gradients_merge_none_and_states(float64, return_sequences):
    rng = np.random.default_rng(7)
    layer = Bidirectional(make("lstm", return_sequences=return_sequences, return_state=True), merge_mode=None)
    x = x_data(7)
    out = layer.forward(x, lengths=np.array([5, 3, 1]))
    assert len(out) == 2 + 4  # y_forward, y_backward, h_f, c_f, h_b, c_b
    weights = [rng.standard_normal(o.shape) for o in out]

    def loss():
        res = layer.forward(x, lengths=np.array([5, 3, 1]))
        return float(sum((r * w).sum() for r, w in zip(res, weights)))

    loss()
    dx = layer.backward(weights[:2], weights[2:])
    analytic = [g.copy() for g in layer.grads]
    assert len(analytic) == 6
    for a, p in zip(analytic, layer.params):
        assert rel_error(a, numerical_grad(loss, p)) < 1e-6
    assert rel_error(dx, numerical_grad(loss, x)) < 1e-6
    assert len(layer.dinitial_state) == 4


def test_two_stacked_layers_gradients(float64):
    """Stacking by composition: LSTM(return_sequences) -> GRU, one loss over the top output."""
    rng = np.random.default_rng(8)
    first, second = make("lstm", return_sequences=True), make("gru", units=2, seed=1)
    x = x_data(8)
    w = rng.standard_normal((B, 2))

    def loss():
        return float((second.forward(first.forward(x, mask=MASK), mask=MASK) * w).sum())

    loss()
    dx = first.backward(second.backward(w))
    params, analytic = first.params + second.params, [g.copy() for g in first.grads + second.grads]
    for a, p in zip(analytic, params):
        assert rel_error(a, numerical_grad(loss, p)) < 1e-6
    assert rel_error(dx, numerical_grad(loss, x)) < 1e-6


# ---- the fast loop equals stepping the cell -----------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("go_backwards", [False, True])
def test_fast_loop_equals_stepping_the_cell(float64, kind, go_backwards):
    rng = np.random.default_rng(9)
    layer = make(kind, return_sequences=True, return_state=True, go_backwards=go_backwards)
    x = x_data(9)
    init = [rng.standard_normal((B, H)) for _ in range(layer.N_STATES)]
    y, *final = layer.forward(x, initial_state=init)
    dy = rng.standard_normal(y.shape)
    dfinal = [rng.standard_normal((B, H)) for _ in final]
    dx = layer.backward(dy, dfinal)

    cell = cell_for(layer)
    order = list(range(T))[::-1] if go_backwards else list(range(T))
    states, hs = init, []
    for t in order:
        h, states = cell.forward(x[:, t], states)
        hs.append(h)
    np.testing.assert_allclose(y, np.stack(hs, axis=1), rtol=0, atol=1e-12)
    for a, b in zip(final, states):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)

    dx_ref, grads_ref = np.zeros_like(x), [np.zeros_like(p) for p in cell.params]
    dstates = dfinal
    for step in reversed(range(T)):  # y[:, step] came from x[:, order[step]]
        dx_t, dstates = cell.backward(dy[:, step], dstates)
        dx_ref[:, order[step]] = dx_t
        grads_ref = [a + g for a, g in zip(grads_ref, cell.grads)]
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-12)
    for g, ref in zip(layer.grads, grads_ref):
        np.testing.assert_allclose(g, ref, rtol=0, atol=1e-12)
    for a, b in zip(layer.dinitial_state, dstates):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


# ---- masks, states, directions ------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_masked_steps_keep_the_state_and_output_zeros(float64, kind):
    layer = make(kind, return_sequences=True, return_state=True)
    x = x_data(10)
    y, *final = layer.forward(x, mask=MASK)
    assert (y[~MASK] == 0).all()
    for b in range(B):
        kept = np.flatnonzero(MASK[b])
        if kept.size == 0:
            np.testing.assert_array_equal(final[0][b], 0.0)
            continue
        # the same as running the real steps alone
        y_b, *final_b = layer.forward(x[b:b + 1, kept])
        np.testing.assert_allclose(y[b, kept], y_b[0], atol=1e-14)
        for s, s_b in zip(final, final_b):
            np.testing.assert_allclose(s[b], s_b[0], atol=1e-14)
    # many-to-one returns each sequence's last valid state; lengths equal the matching mask
    many_to_one = make(kind)
    lengths = np.array([3, 5, 1])
    by_lengths = many_to_one.forward(x, lengths=lengths)
    np.testing.assert_array_equal(by_lengths, many_to_one.forward(x, mask=np.arange(T) < lengths[:, None]))
    np.testing.assert_allclose(by_lengths[0], many_to_one.forward(x[:1, :3])[0], atol=1e-14)


def test_go_backwards_reads_the_sequence_reversed(float64):
    fwd, bwd = make("lstm", return_sequences=True), make("lstm", return_sequences=True, go_backwards=True)
    x = x_data(11)
    np.testing.assert_allclose(bwd.forward(x), fwd.forward(x[:, ::-1]), atol=1e-15)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_stateful_carries_the_state_and_reset_zeroes_it(float64, kind):
    x = x_data(12, shape=(B, 8, D))
    whole = make(kind, return_sequences=True).forward(x)
    layer = make(kind, return_sequences=True, stateful=True)
    first, second = layer.forward(x[:, :5]), layer.forward(x[:, 5:])
    np.testing.assert_allclose(np.concatenate([first, second], axis=1), whole, atol=1e-14)
    assert len(layer.states) == layer.N_STATES and layer.states[0].shape == (B, H)
    layer.reset_states()
    assert layer.states is None
    np.testing.assert_allclose(layer.forward(x[:, 5:]), make(kind, return_sequences=True).forward(x[:, 5:]),
                               atol=1e-15)
    with pytest.raises(ShapeError, match=r"stateful.*\(3, 3\).*\(2, 8, 4\).*reset_states"):
        layer.forward(x[:2])


def test_outputs_are_fresh_arrays_not_internal_buffers(float64):
    layer = make("lstm", return_sequences=True, return_state=True)
    y1, h1, c1 = layer.forward(x_data(13))
    kept = [a.copy() for a in (y1, h1, c1)]
    layer.forward(x_data(14))
    for a, b in zip((y1, h1, c1), kept):
        np.testing.assert_array_equal(a, b)


def test_float32_end_to_end():
    layer = make("lstm", return_sequences=True, return_state=True)
    x = x_data(15).astype(np.float32)
    y, h, c = layer.forward(x)
    dx = layer.backward(np.ones_like(y), [np.ones_like(h), None])
    assert {a.dtype for a in (y, h, c, dx, *layer.params, *layer.grads, *layer.dinitial_state)} == {np.dtype("float32")}
    y64, *_ = layer.forward(x.astype(np.float64))  # a float64 input does not upcast the layer
    assert y64.dtype == np.float32


# ---- Bidirectional -----------------------------------------------------------------------------

def test_bidirectional_is_a_forward_and_a_reversed_backward_layer(float64):
    layer = Bidirectional(make("gru", return_sequences=True, return_state=True))
    x = x_data(16)
    lengths = np.array([5, 3, 2])
    y, h_f, h_b = layer.forward(x, lengths=lengths)
    assert y.shape == (B, T, 2 * H)
    fwd, bwd = layer.forward_layer, layer.backward_layer
    assert bwd.go_backwards and not fwd.go_backwards and bwd.name == f"backward_{fwd.name}"
    assert layer.params == fwd.params + bwd.params and layer.count_params() == 2 * fwd.count_params()
    assert not np.allclose(fwd.kernel, bwd.kernel)  # its own weights
    plain = make("gru", return_sequences=True, return_state=True)  # reads in order, the backward weights
    plain.build((None, D))
    plain.set_weights(bwd.get_weights())
    for b in range(B):  # the backward half at step t has read x[t:length] from the end
        L_b = lengths[b]
        y_plain, h_plain = plain.forward(x[b:b + 1, :L_b][:, ::-1])
        np.testing.assert_allclose(y[b, :L_b, H:], y_plain[0, ::-1], atol=1e-14)
        np.testing.assert_allclose(h_b[b], h_plain[0], atol=1e-14)
        assert (y[b, L_b:] == 0).all()


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bidirectional_directions_at_once_equal_in_turn(monkeypatch, both_kernel_paths, kind, dtype):
    """On the compiled path the two directions run at once, on two threads (seen by the thread
    each compiled loop runs on), and give the bits of one direction after the other: outputs,
    states, dx, every gradient, dinitial_state. On the other paths they run in turn."""
    from rnnlab import backend
    from rnnlab.layers.fast import FastLoop, compiled

    previous = backend.floatx()
    backend.set_floatx(np.dtype(dtype).name)
    try:
        rng = np.random.default_rng(3)
        x = rng.standard_normal((9, 11, D)).astype(dtype)
        lengths = np.array([11, 4, 0, 11, 7, 1, 11, 10, 3])
        threads = []
        if both_kernel_paths == "compiled":
            name = f"{kind}_forward_into"
            loop = getattr(compiled, name)
            monkeypatch.setattr(compiled, name, lambda *a, **k: threads.append(
                (threading.get_ident(), compiled.default_threads())) or loop(*a, **k))
        runs = {}
        for at_once in (False, None):
            monkeypatch.setattr(FastLoop, "DIRECTIONS_AT_ONCE", at_once)
            layer = Bidirectional(make(kind, units=5, return_sequences=True, return_state=True))
            y, *states = layer.forward(x, lengths=lengths)
            dy = np.random.default_rng(4).standard_normal(y.shape).astype(dtype)
            dx = layer.backward(dy, [np.ones_like(s) for s in states])
            runs[at_once] = [y, *states, dx, *layer.grads, *layer.dinitial_state]
        for a, b in zip(runs[False], runs[None]):
            assert a.dtype == dtype
            np.testing.assert_array_equal(a, b)
        if both_kernel_paths == "compiled":
            (t_f, n_f), (t_b, n_b), (t_f2, n_f2), (t_b2, n_b2) = threads
            assert t_f == t_b and n_f == n_b == compiled.default_threads()   # in turn: one thread
            assert t_f2 != t_b2 and n_f2 == n_b2 == 1        # at once: two threads, each loop on 1
        else:
            assert threads == []
    finally:
        backend.set_floatx(previous)


def test_bidirectional_directions_at_once_needs_the_compiled_loops(monkeypatch):
    from rnnlab.layers import fast

    monkeypatch.setattr(fast, "_enabled", True)       # a setting of the fast loops, on every path
    monkeypatch.setattr(fast.FastLoop, "COMPILED", False)
    monkeypatch.setattr(fast.FastLoop, "DIRECTIONS_AT_ONCE", True)
    with pytest.raises(RuntimeError, match="DIRECTIONS_AT_ONCE = True needs the compiled loops"):
        Bidirectional(SimpleRNN(2)).forward(np.zeros((1, 2, 3), np.float32))


def test_bidirectional_shapes_and_config():
    bi = Bidirectional(LSTM(4, return_sequences=True, return_state=True), merge_mode="concat")
    assert bi.compute_output_shape((None, 3)) == [(None, 8), (4,), (4,), (4,), (4,)]
    assert Bidirectional(GRU(4), merge_mode="sum").compute_output_shape((7, 3)) == (4,)
    pair = Bidirectional(GRU(4, return_sequences=True), merge_mode=None)
    assert pair.compute_output_shape((7, 3)) == [(7, 4), (7, 4)]
    bi.forward(np.zeros((2, 5, 3), dtype=np.float32))
    clone = layer_from_dict(layer_to_dict(bi))
    assert type(clone) is Bidirectional and clone.get_config() == bi.get_config()
    clone.build((None, 3))
    assert [p.shape for p in clone.params] == [p.shape for p in bi.params]
    with pytest.raises(ValueError, match="merge_mode"):
        Bidirectional(LSTM(2), merge_mode="max")
    with pytest.raises(TypeError, match="SimpleRNN, LSTM or GRU"):
        Bidirectional(RNNCell(2))


# ---- Keras parameter counts, shapes, config -------------------------------------------------------

@pytest.mark.parametrize("layer,features,count", [
    (lambda: SimpleRNN(16), 6, 368), (lambda: SimpleRNN(32), 16, 1568),
    (lambda: LSTM(16), 1, 1152), (lambda: LSTM(32), 16, 6272),
    (lambda: GRU(16), 6, 3 * 16 * (6 + 16) + 6 * 16), (lambda: GRU(16, reset_after=False), 6, 3 * 16 * (6 + 16 + 1)),
    (lambda: GRU(32), 16, 4800), (lambda: GRU(32, reset_after=False), 16, 4704),
])
def test_keras_parameter_counts(layer, features, count):
    layer = layer()
    layer.build((None, features))
    assert layer.count_params() == count


def test_output_shapes_and_config_round_trip():
    layer = LSTM(5, return_sequences=True, return_state=True, go_backwards=True, stateful=True,
                 kernel_initializer="uniform:0.1", unit_forget_bias=False, name="enc")
    assert layer.compute_output_shape((None, 3)) == [(None, 5), (5,), (5,)]
    assert SimpleRNN(4).compute_output_shape((20, 6)) == (4,)
    assert GRU(4, return_sequences=True).compute_output_shape((None, 6)) == (None, 4)
    clone = layer_from_dict(layer_to_dict(layer))
    assert type(clone) is LSTM and clone.get_config() == layer.get_config()
    assert clone.get_config()["kernel_initializer"] == "uniform:0.1"
    assert layer_from_dict(layer_to_dict(SimpleRNN(3, activation="relu"))).activation == "relu"


def test_parameter_sharing_any_length():
    """Trained briefly on length 10, the same weights run on length 20 and 1000."""
    rng = np.random.default_rng(0)
    layer = LSTM(8, seed=0)
    x = rng.standard_normal((16, 10, 2)).astype(np.float32)
    target = x[:, :, :1].sum(axis=1)                # the sum of the first feature
    head = rng.standard_normal((8, 1)).astype(np.float32) * 0.1
    losses = []
    for _ in range(30):
        h = layer.forward(x)
        err = h @ head - target
        losses.append(float((err ** 2).mean()))
        dh = (2 * err / err.size) @ head.T
        head -= 0.05 * h.T @ (2 * err / err.size)
        layer.backward(dh)
        for p, g in zip(layer.params, layer.grads):
            p -= 0.05 * g
    assert losses[-1] < losses[0]
    count, weights = layer.count_params(), layer.get_weights()
    for steps in (20, 1000):
        out = layer.forward(rng.standard_normal((4, steps, 2)).astype(np.float32))
        assert out.shape == (4, 8) and np.isfinite(out).all()
        assert layer.count_params() == count == 4 * (2 * 8 + 8 * 8 + 8)
        for a, b in zip(layer.get_weights(), weights):
            np.testing.assert_array_equal(a, b)


# ---- bad input: errors name the layer and the shapes ------------------------------------------------

def test_bad_input_errors_name_layer_and_shapes():
    layer = LSTM(3, name="enc")
    x = np.zeros((2, 4, 5), dtype=np.float32)
    with pytest.raises(ShapeError, match=r"enc.*3-D input \(batch, time, features\).*\(4, 5\)"):
        layer.forward(x[0])
    layer.forward(x)
    with pytest.raises(ShapeError, match=r"enc.*5 features.*\(2, 4, 6\)"):
        layer.forward(np.zeros((2, 4, 6), dtype=np.float32))
    with pytest.raises(ShapeError,
                       match=r"enc.*mask must have shape \(batch, time\) = \(2, 4\).*\(2, 4, 5\).*\(2, 3\)"):
        layer.forward(x, mask=np.ones((2, 3), dtype=bool))
    with pytest.raises(ShapeError, match=r"enc.*lengths must have shape \(batch,\) = \(2,\).*\(3,\)"):
        layer.forward(x, lengths=np.array([1, 2, 3]))
    with pytest.raises(ValueError, match=r"enc.*lengths must lie in \[0, 4\].*\[1, 9\]"):
        layer.forward(x, lengths=np.array([1, 9]))
    with pytest.raises(ShapeError,
                       match=r"enc.*initial_state\[1\] must have shape \(batch, units\) = \(2, 3\).*\(2, 4\)"):
        layer.forward(x, initial_state=[np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ShapeError, match=r"enc.*list of 2 array"):
        layer.forward(x, initial_state=[np.zeros((2, 3))])
    bad = x.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match=r"enc.*\(2, 4, 5\).*NaN or inf"):
        layer.forward(bad)
    bad[1, 2, 3] = np.inf
    with pytest.raises(ValueError, match=r"enc.*NaN or inf"):
        layer.forward(bad)
    layer.forward(x)
    with pytest.raises(ShapeError, match=r"enc.*gradient of shape \(2, 3\).*\(2, 4, 3\)"):
        layer.backward(np.zeros((2, 4, 3), dtype=np.float32))
    with pytest.raises(RuntimeError, match="before forward"):
        GRU(2, name="g").backward(np.zeros((1, 2)))
    with pytest.raises(ShapeError, match=r"bi.*3-D input.*\(4, 5\)"):
        Bidirectional(GRU(2), name="bi").forward(x[0])
