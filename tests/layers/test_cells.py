"""Single-step cells: equations by hand, float64 gradient checks, Keras initializers and layout."""
import numpy as np
import pytest

from gradcheck import numerical_grad, rel_error
from rnnlab.layers import GRUCell, LSTMCell, RNNCell, ShapeError, layer_from_dict, layer_to_dict


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def make_cell(kind, units=3, **kwargs):
    if kind == "rnn":
        return RNNCell(units, seed=0, **kwargs)
    if kind == "lstm":
        return LSTMCell(units, seed=0, **kwargs)
    if kind == "gru":
        return GRUCell(units, seed=0, **kwargs)
    return GRUCell(units, reset_after=False, seed=0, **kwargs)


def random_states(cell, B, rng):
    return [rng.standard_normal((B, cell.units)) for _ in range(cell.N_STATES)]


def check_cell_gradients(cell, x, states, seed=0):
    """L = <R_h, h_t> + sum_k <R_k, state_k>: every parameter, dx and every d(previous state)."""
    rng = np.random.default_rng(seed)
    h, new = cell.forward(x, states)
    cell.clear()
    r_h = rng.standard_normal(h.shape)
    r_s = [rng.standard_normal(s.shape) for s in new]

    def loss():
        h, new = cell.forward(x, states)
        cell.clear()
        return float((h * r_h).sum() + sum((s * r).sum() for s, r in zip(new, r_s)))

    cell.forward(x, states)
    dx, dprev = cell.backward(r_h, r_s)
    analytic = [g.copy() for g in cell.grads]
    errors = {f"param{i}": rel_error(analytic[i], numerical_grad(loss, p)) for i, p in enumerate(cell.params)}
    errors["x"] = rel_error(dx, numerical_grad(loss, x))
    for k, s in enumerate(states):
        errors[f"state{k}"] = rel_error(dprev[k], numerical_grad(loss, s))
    assert max(errors.values()) < 1e-6, errors
    return errors


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru", "gru_reset_before"])
def test_cell_gradients(float64, kind):
    rng = np.random.default_rng(1)
    cell = make_cell(kind, bias_initializer="uniform:0.5")
    x = rng.standard_normal((4, 5))
    cell.build((5,))
    errors = check_cell_gradients(cell, x, random_states(cell, 4, rng))
    assert len(errors) == 3 + 1 + cell.N_STATES


@pytest.mark.parametrize("activation", ["relu", "sigmoid", "linear"])
def test_rnn_cell_activations_gradients(float64, activation):
    rng = np.random.default_rng(2)
    cell = RNNCell(3, activation=activation, seed=0, bias_initializer="uniform:0.5")
    cell.build((4,))
    check_cell_gradients(cell, rng.standard_normal((2, 4)), random_states(cell, 2, rng))


def test_rnn_cell_is_the_seed_formula(float64):
    # h_t = tanh(h_{t-1} W_h + x_t W_x + b)
    rng = np.random.default_rng(0)
    cell = RNNCell(4, seed=0, bias_initializer="uniform:1")
    x, h = rng.standard_normal((3, 2)), rng.standard_normal((3, 4))
    out, states = cell.forward(x, [h])
    W_x, W_h, b = cell.get_weights()
    np.testing.assert_allclose(out, np.tanh(h @ W_h + x @ W_x + b), rtol=1e-14)
    assert states[0] is out


def test_lstm_cell_equations_and_gate_order(float64):
    rng = np.random.default_rng(0)
    cell = LSTMCell(3, seed=0, bias_initializer="uniform:1")
    x, h, c = rng.standard_normal((2, 4)), rng.standard_normal((2, 3)), rng.standard_normal((2, 3))
    out, (h1, c1) = cell.forward(x, [h, c])
    W, U, b = cell.get_weights()
    z = x @ W + h @ U + b
    i, f, g, o = sigmoid(z[:, :3]), sigmoid(z[:, 3:6]), np.tanh(z[:, 6:9]), sigmoid(z[:, 9:])
    c_ref = f * c + i * g
    np.testing.assert_allclose(c1, c_ref, rtol=1e-13)
    np.testing.assert_allclose(out, o * np.tanh(c_ref), rtol=1e-13)


@pytest.mark.parametrize("reset_after", [True, False])
def test_gru_cell_equations_both_reset_after(float64, reset_after):
    rng = np.random.default_rng(0)
    cell = GRUCell(3, reset_after=reset_after, seed=0, bias_initializer="uniform:1")
    x, h = rng.standard_normal((2, 4)), rng.standard_normal((2, 3))
    out, _ = cell.forward(x, [h])
    W, U, b = cell.get_weights()
    H = 3
    if reset_after:
        assert b.shape == (2, 9)
        xz, hz = x @ W + b[0], h @ U + b[1]
        z = sigmoid(xz[:, :H] + hz[:, :H])
        r = sigmoid(xz[:, H:2 * H] + hz[:, H:2 * H])
        hh = np.tanh(xz[:, 2 * H:] + r * hz[:, 2 * H:])
    else:
        assert b.shape == (9,)
        z = sigmoid(x @ W[:, :H] + h @ U[:, :H] + b[:H])
        r = sigmoid(x @ W[:, H:2 * H] + h @ U[:, H:2 * H] + b[H:2 * H])
        hh = np.tanh(x @ W[:, 2 * H:] + (r * h) @ U[:, 2 * H:] + b[2 * H:])
    np.testing.assert_allclose(out, z * h + (1 - z) * hh, rtol=1e-13)


@pytest.mark.parametrize("kind,gates", [("rnn", 1), ("lstm", 4), ("gru", 3)])
def test_keras_default_initializers_and_layout(kind, gates):
    cell = make_cell(kind, units=8)
    cell.build((5,))
    W, U, b = cell.params
    assert W.shape == (5, gates * 8) and U.shape == (8, gates * 8)
    assert all(p.flags["C_CONTIGUOUS"] and p.dtype == np.float32 for p in cell.params)
    limit = np.sqrt(6.0 / (5 + gates * 8))                        # glorot uniform
    assert np.abs(W).max() <= limit and np.abs(W).max() > 0.7 * limit
    np.testing.assert_allclose(U @ U.T, np.eye(8), atol=1e-5)     # orthogonal rows
    expected = np.zeros(b.shape)
    if kind == "lstm":
        expected[8:16] = 1.0                                      # unit_forget_bias
    np.testing.assert_array_equal(b, expected)
    assert cell.weight_names == ["kernel", "recurrent_kernel", "bias"]


def test_initializers_are_selectable():
    cell = LSTMCell(4, kernel_initializer="uniform:0.1", recurrent_initializer="uniform:0.1",
                    bias_initializer="uniform:0.1", unit_forget_bias=False, seed=3)
    cell.build((4,))
    for p in cell.params:
        assert np.abs(p).max() <= 0.1 and np.abs(p).min() > 0 and np.unique(p).size == p.size
    W, U, _ = cell.params
    assert not np.allclose(W, U)  # one generator for all weights: no shared draws
    with_forget = LSTMCell(4, bias_initializer="uniform:0.1", seed=3)
    with_forget.build((4,))
    np.testing.assert_array_equal(with_forget.bias[4:8], 1.0)
    assert with_forget.get_config()["bias_initializer"] == "uniform:0.1"


def test_cell_steps_then_backward_in_reverse_order(float64):
    """Stepping T times and taking the steps back LIFO: the per-step grads sum to the layer's."""
    from rnnlab.layers import LSTM

    rng = np.random.default_rng(0)
    cell = LSTMCell(3, seed=0)
    xs = rng.standard_normal((4, 2, 5))
    states = None
    for t in range(4):
        h, states = cell.forward(xs[t], states)
    assert len(cell._caches) == 4
    dstates, total = None, None
    for t in reversed(range(4)):
        dx, dstates = cell.backward(np.ones((2, 3)), dstates)
        step = [g.copy() for g in cell.grads]
        total = step if total is None else [a + b for a, b in zip(total, step)]
    assert not cell._caches and dx.shape == (2, 5) and len(dstates) == 2
    layer = LSTM(3, return_sequences=True)
    layer.build((None, 5))
    layer.set_weights(cell.get_weights())
    layer.forward(xs.transpose(1, 0, 2))
    layer.backward(np.ones((2, 4, 3)))
    for a, b in zip(total, layer.grads):
        np.testing.assert_allclose(a, b, atol=1e-12)
    with pytest.raises(RuntimeError, match="backward called more times than forward"):
        cell.backward(np.ones((2, 3)))


def test_cell_config_round_trip():
    cell = GRUCell(5, reset_after=False, bias_initializer="uniform:0.2", name="g")
    clone = layer_from_dict(layer_to_dict(cell))
    assert type(clone) is GRUCell and clone.get_config() == cell.get_config()
    assert clone.reset_after is False and clone.units == 5


def test_cell_bad_input_names_cell_and_shapes():
    cell = LSTMCell(3, name="step")
    with pytest.raises(ShapeError, match=r"step.*2-D input \(batch, features\).*\(2, 4, 5\)"):
        cell.forward(np.zeros((2, 4, 5), dtype=np.float32))
    cell.forward(np.zeros((2, 5), dtype=np.float32))
    with pytest.raises(ShapeError, match=r"step.*5 features.*\(2, 6\)"):
        cell.forward(np.zeros((2, 6), dtype=np.float32))
    with pytest.raises(ShapeError, match=r"step.*state 1 must have shape \(batch, units\) = \(2, 3\).*\(2, 4\)"):
        cell.forward(np.zeros((2, 5), dtype=np.float32), [np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ValueError, match=r"step.*\(1, 5\).*NaN"):
        cell.forward(np.full((1, 5), np.nan, dtype=np.float32))
    with pytest.raises(ValueError, match="activation"):
        RNNCell(3, activation="softmax")
