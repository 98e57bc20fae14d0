"""Vanishing/exploding gradient tools, checked on a linear RNN where the answer is known."""
import numpy as np
import pytest

from rnnlab import layers as L
from rnnlab.diagnostics import gradient_norm_per_step, recurrent_singular_values
from rnnlab.initializers import orthogonal


@pytest.mark.parametrize("scale", [0.5, 1.5])
def test_gradient_norm_decays_or_grows_as_the_recurrent_scale_to_the_distance(float64, scale):
    units, steps = 4, 8
    layer = L.SimpleRNN(units, activation="linear", seed=0)
    x = np.random.default_rng(0).standard_normal((1, steps, units))
    layer.forward(x)
    q = orthogonal((units, units), rng=np.random.default_rng(1))
    # kernel = I and U = s Q: dL/dx_t = r (s Q^T)^(T-1-t), whose norm is s^(T-1-t) ||r||
    layer.set_weights([np.eye(units), scale * q, np.zeros(units)])
    norms = gradient_norm_per_step(layer, x)
    ratios = norms[:-1] / norms[1:]
    np.testing.assert_allclose(ratios, scale, rtol=1e-10)
    values = recurrent_singular_values(layer)["h"]
    np.testing.assert_allclose(values, scale, rtol=1e-10)


def test_singular_values_per_gate_block_for_lstm():
    layer = L.LSTM(3, seed=0)
    layer.forward(np.zeros((1, 2, 5), dtype=np.float32))
    values = recurrent_singular_values(layer)
    assert list(values) == ["i", "f", "c", "o"]
    u = layer.get_weights()[1]
    np.testing.assert_allclose(values["f"], np.linalg.svd(u[:, 3:6].astype(float), compute_uv=False), rtol=1e-6)


def test_gradient_norm_needs_last_output_only():
    layer = L.LSTM(3, return_sequences=True, name="seq")
    with pytest.raises(ValueError, match="seq.*return_sequences=False"):
        gradient_norm_per_step(layer, np.zeros((1, 2, 3), dtype=np.float32))
