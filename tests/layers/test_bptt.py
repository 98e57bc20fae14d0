"""layers/bptt.py, the plain unrolled forward/backward over time: its own float64 gradient
check, then its use as the oracle of the fast layers (both kernel paths, every kind and option
that changes the equations), and the cells stepped by hand agree with it too."""
import numpy as np
import pytest

from gradcheck import numerical_grad, rel_error
from rnnlab.layers import GRU, LSTM, GRUCell, LSTMCell, RNNCell, SimpleRNN, bptt

B, T, D, H = 3, 5, 4, 3

# (name, layer class, options): every form of the step equations
FORMS = [("rnn_tanh", SimpleRNN, {}), ("rnn_relu", SimpleRNN, {"activation": "relu"}),
         ("rnn_sigmoid", SimpleRNN, {"activation": "sigmoid"}),
         ("rnn_linear", SimpleRNN, {"activation": "linear"}),
         ("lstm", LSTM, {}), ("gru", GRU, {}), ("gru_reset_before", GRU, {"reset_after": False})]


def plain(layer, x, init):
    """bptt's forward for ``layer``'s kind and weights: (hs, final states, backward function)."""
    W, U, b = layer.kernel, layer.recurrent_kernel, layer.bias
    if isinstance(layer, LSTM):
        hs, cache = bptt.lstm_forward(x, W, U, b, *init)
        return hs, [hs[:, -1], cache[2]], lambda dhs, d: bptt.lstm_backward(dhs, cache, W, U, *d)
    if isinstance(layer, GRU):
        hs, cache = bptt.gru_forward(x, W, U, b, *init)
        return hs, [hs[:, -1]], lambda dhs, d: bptt.gru_backward(dhs, cache, W, U, *d)
    hs, cache = bptt.rnn_forward(x, W, U, b, *init, activation=layer.activation)
    return hs, [hs[:, -1]], lambda dhs, d: bptt.rnn_backward(dhs, cache, W, U, *d)


def make(cls, options):
    return cls(H, return_sequences=True, return_state=True, seed=0, bias_initializer="uniform:0.5", **options)


@pytest.mark.parametrize("name,cls,options", FORMS, ids=[f[0] for f in FORMS])
def test_bptt_gradients_are_the_numerical_ones(float64, name, cls, options):
    rng = np.random.default_rng(1)
    layer = make(cls, options)
    x = rng.standard_normal((B, T, D))
    layer.build((T, D))
    init = [rng.standard_normal((B, H)) for _ in range(layer.N_STATES)]
    r = rng.standard_normal((B, T, H))

    def loss():
        return float((plain(layer, x, init)[0] * r).sum())

    _, _, backward = plain(layer, x, init)
    dx, grads, dinit = backward(r, [None] * layer.N_STATES)
    for g, p in zip(grads, layer.params):
        assert rel_error(g, numerical_grad(loss, p)) < 1e-6
    assert rel_error(dx, numerical_grad(loss, x)) < 1e-6
    for d, s in zip(dinit, init):
        assert rel_error(d, numerical_grad(loss, s)) < 1e-6


@pytest.mark.usefixtures("both_kernel_paths")
@pytest.mark.parametrize("name,cls,options", FORMS, ids=[f[0] for f in FORMS])
def test_fast_layer_equals_plain_bptt(float64, name, cls, options):
    """Outputs, final states, dx, every weight gradient and dL/d(initial states) to 1e-12."""
    rng = np.random.default_rng(9)
    layer = make(cls, options)
    x = rng.standard_normal((B, T, D))
    init = [rng.standard_normal((B, H)) for _ in range(layer.N_STATES)]
    y, *final = layer.forward(x, initial_state=init)
    dy = rng.standard_normal(y.shape)
    dfinal = [rng.standard_normal((B, H)) for _ in final]
    dx = layer.backward(dy, dfinal)

    hs, final_ref, backward = plain(layer, x, init)
    dx_ref, grads_ref, dinit_ref = backward(dy, dfinal)
    np.testing.assert_allclose(y, hs, rtol=0, atol=1e-12)
    for a, b in zip(final, final_ref):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=0, atol=1e-12)
    for g, ref in zip(layer.grads, grads_ref):
        np.testing.assert_allclose(g, ref, rtol=0, atol=1e-12)
    for a, b in zip(layer.dinitial_state, dinit_ref):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name,cls,options", FORMS, ids=[f[0] for f in FORMS])
def test_cells_stepped_by_hand_equal_plain_bptt(float64, name, cls, options):
    rng = np.random.default_rng(3)
    layer = make(cls, options)
    x = rng.standard_normal((B, T, D))
    layer.build((T, D))
    cell = {SimpleRNN: RNNCell, LSTM: LSTMCell, GRU: GRUCell}[cls](H, **options)
    cell.build((D,))
    cell.set_weights(layer.get_weights())
    hs, _, backward = plain(layer, x, [None] * layer.N_STATES)
    states, dy = None, rng.standard_normal((B, T, H))
    for t in range(T):
        h, states = cell.forward(x[:, t], states)
        np.testing.assert_allclose(h, hs[:, t], rtol=0, atol=1e-12)
    dx_ref, grads_ref, _ = backward(dy, [None] * layer.N_STATES)
    grads, dstates = [np.zeros_like(p) for p in cell.params], None
    for t in reversed(range(T)):
        dx_t, dstates = cell.backward(dy[:, t], dstates)
        np.testing.assert_allclose(dx_t, dx_ref[:, t], rtol=0, atol=1e-12)
        grads = [a + g for a, g in zip(grads, cell.grads)]
    for g, ref in zip(grads, grads_ref):
        np.testing.assert_allclose(g, ref, rtol=0, atol=1e-12)


def test_lstm_bptt_reads_in_under_60_lines():
    """The README points learners at lstm_forward / lstm_backward: keep each one short."""
    import inspect

    for fn in (bptt.lstm_forward, bptt.lstm_backward):
        assert len(inspect.getsource(fn).splitlines()) < 60
