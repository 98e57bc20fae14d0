"""Core layers: gradient checks in float64 and behaviour."""
import numpy as np
import pytest

from gradcheck import check_layer_gradients
from rnnlab import layers as L
from rnnlab.layers import ShapeError


@pytest.mark.parametrize("activation", ["linear", "tanh", "sigmoid", "relu", "softmax"])
@pytest.mark.parametrize("units", [6, 3])   # wider than the 5 inputs: bias inside the GEMM; narrower: h += b
def test_dense_gradients_on_every_time_step(float64, activation, units):
    x = np.random.default_rng(1).standard_normal((3, 4, 5))
    layer = L.Dense(units, activation=activation, seed=0)
    errors = check_layer_gradients(layer, x)
    assert set(errors) == {"param0", "param1", "input"}


def test_dense_without_bias_gradients(float64):
    errors = check_layer_gradients(L.Dense(7, use_bias=False, seed=0), np.random.default_rng(1).standard_normal((3, 5)))
    assert set(errors) == {"param0", "input"}


@pytest.mark.parametrize("units", [6, 3])
def test_dense_kernel_and_bias_are_one_array_and_in_place_updates_count(float64, units):
    """kernel and bias are views of one [W; b] (gradients of one [dW; db]); an in-place update of
    either, as optimizers and set_weights make, changes what forward computes on both paths."""
    layer = L.Dense(units, seed=0)
    x = np.random.default_rng(2).standard_normal((4, 5))
    layer.forward(x)
    assert layer.params[0] is layer.kernel and layer.params[1] is layer.bias
    assert layer.kernel.base is layer.bias.base and layer.grads[0].base is layer.grads[1].base
    layer.set_weights([np.ones((5, units)), np.arange(units, dtype=float)])
    layer.bias[0] -= 10.0
    expected = x @ np.ones((5, units)) + np.arange(units) - 10.0 * (np.arange(units) == 0)
    np.testing.assert_allclose(layer.forward(x), expected, rtol=1e-12)
    layer.backward(np.ones((4, units)))
    np.testing.assert_allclose(layer.grads[0], np.repeat(x.sum(axis=0)[:, None], units, axis=1), rtol=1e-12)
    np.testing.assert_allclose(layer.grads[1], np.full(units, 4.0))


def test_dense_acts_on_last_axis_of_sequence(float64):
    x = np.random.default_rng(0).standard_normal((2, 7, 3))
    layer = L.Dense(4, seed=0)
    y = layer.forward(x)
    assert y.shape == (2, 7, 4)
    np.testing.assert_allclose(y[1, 5], x[1, 5] @ layer.kernel + layer.bias)


@pytest.mark.parametrize("one_hot_max_ids", [512, 0])   # the one-hot GEMM, then the segment sums
def test_embedding_gradient_sums_repeated_ids(float64, monkeypatch, one_hot_max_ids):
    monkeypatch.setattr(L.Embedding, "ONE_HOT_MAX_IDS", one_hot_max_ids)
    ids = np.array([[1, 2, 1], [3, 1, 0]])
    layer = L.Embedding(5, 4, seed=0)
    out = layer.forward(ids)
    dout = np.random.default_rng(0).standard_normal(out.shape)
    layer.backward(dout)
    expected = np.zeros((5, 4))
    np.add.at(expected, ids.ravel(), dout.reshape(-1, 4))
    np.testing.assert_allclose(layer.grads[0], expected)
    check_layer_gradients(layer, ids)


def test_embedding_rejects_out_of_range_ids():
    layer = L.Embedding(5, 4, name="emb")
    with pytest.raises(ValueError, match=r"emb.*\[0, 5\).*\[0, 7\]"):
        layer.forward(np.array([[0, 7]]))


def test_dropout_scales_kept_units_and_is_identity_in_eval(float64):
    layer = L.Dropout(0.5, seed=3)
    x = np.ones((200, 50))
    y = layer.forward(x)
    kept = y != 0
    assert 0.4 < kept.mean() < 0.6
    np.testing.assert_allclose(y[kept], 2.0)
    np.testing.assert_allclose(layer.backward(np.ones_like(x)), y)
    layer.eval()
    np.testing.assert_array_equal(layer.forward(x), x)


def test_dropout_noise_shape_shares_mask_over_time():
    layer = L.Dropout(0.5, noise_shape=(None, 1, None), seed=0)
    y = layer.forward(np.ones((4, 6, 8), dtype=np.float32))
    assert (y == y[:, :1, :]).all()


def test_flatten_and_activation_gradients(float64):
    x = np.random.default_rng(2).standard_normal((2, 3, 4))
    flat = L.Flatten()
    assert flat.forward(x).shape == (2, 12)
    check_layer_gradients(flat, x)
    check_layer_gradients(L.Activation("tanh"), x)


def test_dense_wrong_feature_size_names_layer_and_shapes():
    layer = L.Dense(3, name="head")
    layer.forward(np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ShapeError, match=r"head.*4 features.*\(2, 5\)"):
        layer.forward(np.zeros((2, 5), dtype=np.float32))


def test_dense_nan_input_names_layer():
    layer = L.Dense(3, name="head")
    with pytest.raises(ValueError, match=r"head.*\(1, 2\).*NaN"):
        layer.forward(np.array([[np.nan, 1.0]], dtype=np.float32))


@pytest.mark.parametrize("shape", [(64, 256), (7, 200), (33, 512)])
def test_transpose_into_matches_transpose_for_blocked_and_plain_copies(shape):
    # rows 256 or 512 float32 values apart (1 KB multiples) take the blocked copy; 200 the plain one
    from rnnlab.layers.fast.base import transpose_into

    src = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    column_block = src[:, shape[1] // 4:]           # a strided view, as the GRU passes U[:, 2H:]
    for a in (src, column_block):
        dst = np.full(a.shape[::-1], np.nan, dtype=np.float32)
        assert transpose_into(dst, a) is dst
        np.testing.assert_array_equal(dst, a.T)
