"""Losses: values against direct formulas, gradients against central differences (float64)."""
import numpy as np
import pytest

from gradcheck import numerical_grad, rel_error, require_numba
from rnnlab import losses
from rnnlab.layers.fast import compiled, softmax


def _ce_reference(z, t, counted):
    z2 = z.reshape(-1, z.shape[-1])
    logp = z2 - np.log(np.exp(z2).sum(axis=1, keepdims=True))
    nll = -logp[np.arange(len(z2)), np.where(counted.ravel(), t.ravel(), 0)]
    return nll[counted.ravel()].mean()


def test_log_softmax_matches_definition_and_is_stable():
    x = np.array([[1.0, 2.0, 3.0], [1000.0, 0.0, -1000.0]])
    out = losses.log_softmax(x)
    np.testing.assert_allclose(out[0], x[0] - np.log(np.exp(x[0]).sum()))
    np.testing.assert_allclose(out[1], [0.0, -1000.0, -2000.0])
    assert np.isfinite(out).all()


def test_cross_entropy_value_and_gradient_with_mask_and_ignore_index(float64):
    rng = np.random.default_rng(0)
    z = rng.standard_normal((3, 4, 5))
    t = rng.integers(0, 5, (3, 4))
    t[0, 1] = -100                       # ignored by index
    mask = np.ones((3, 4), dtype=bool)
    mask[2, 2:] = False                  # padding
    loss = losses.SoftmaxCrossEntropy()
    value = loss.forward(z, t, mask=mask)
    counted = (t != -100) & mask
    assert loss.count == int(counted.sum()) == 9
    np.testing.assert_allclose(value, _ce_reference(z, t, counted), rtol=1e-12)
    dz = loss.backward().copy()
    assert dz.shape == z.shape
    assert not dz[~counted].any()        # uncounted positions get no gradient
    num = numerical_grad(lambda: losses.SoftmaxCrossEntropy().forward(z, t, mask=mask), z)
    assert rel_error(dz, num) < 1e-6


@pytest.mark.parametrize("row_block", [5, 10, 15])   # blocks of 1, 2 and 3 rows over 12 rows
def test_cross_entropy_in_row_blocks_equals_all_rows_at_once(float64, monkeypatch, row_block):
    rng = np.random.default_rng(1)
    z, t = rng.standard_normal((3, 4, 5)) * 3, rng.integers(0, 5, (3, 4))
    mask = np.ones((3, 4), dtype=bool)
    mask[1, 3] = False
    whole = losses.SoftmaxCrossEntropy()
    expected = whole.forward(z, t, mask=mask), whole.backward().copy()
    monkeypatch.setattr(softmax, "ROW_BLOCK", row_block)
    blocked = losses.SoftmaxCrossEntropy()
    assert blocked.forward(z, t, mask=mask) == pytest.approx(expected[0], rel=1e-14)
    np.testing.assert_allclose(blocked.backward(), expected[1], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("offsets", ["none", "all_large", "rows_far_apart"])
def test_cross_entropy_shift_choices_equal_per_row_shift_in_float32(monkeypatch, offsets):
    """Logits within (-SHIFT_RANGE, SHIFT_RANGE) are not shifted, logits within SHIFT_RANGE of
    each other share one shift; either way loss and gradient must match the per-row shift
    (forced with SHIFT_RANGE = 0) and a float64 reference. Rows 60 apart (per-row) too."""
    monkeypatch.setattr(softmax, "uses_fused", lambda z: False)  # NumPy's form
    rng = np.random.default_rng(2)
    z = (rng.standard_normal((40, 50)) * 3).astype(np.float32)
    if offsets == "all_large":
        z += 100.0
    if offsets == "rows_far_apart":
        z += np.linspace(-60, 60, 40, dtype=np.float32)[:, None]
    t = rng.integers(0, 50, 40)
    reference = _ce_reference(z.astype(np.float64), t, np.ones(40, bool))
    shared = losses.SoftmaxCrossEntropy()
    value, dz = shared.forward(z, t), shared.backward().copy()
    monkeypatch.setattr(softmax, "SHIFT_RANGE", 0.0)
    per_row = losses.SoftmaxCrossEntropy()
    assert value == pytest.approx(per_row.forward(z, t), rel=2e-6)
    np.testing.assert_allclose(dz, per_row.backward(), rtol=1e-5, atol=1e-9)
    assert value == pytest.approx(reference, rel=2e-6)


@pytest.mark.parametrize("case", ["plain", "masked", "huge", "two_threads"])
def test_cross_entropy_fused_float32_equals_the_numpy_form(monkeypatch, case):
    """float32 with numba runs fused.exp_rows (row max, exp and sum in one pass, rows split over
    two threads for large batches); it must give the NumPy form's loss and gradient, and the
    same bits with one thread or two."""
    require_numba()
    rng = np.random.default_rng(5)
    shape = (300, 700) if case == "two_threads" else (4, 9, 50)
    z = (rng.standard_normal(shape) * 4).astype(np.float32)
    t = rng.integers(0, shape[-1], shape[:-1])
    mask = None
    if case == "masked":
        mask = rng.random(shape[:-1]) < 0.7
        t[0, 0] = -100                                      # ignore_index as well
    if case == "huge":
        z[0] += 1e4
        z[1, :, 3] = 3e4
    fused_loss = losses.SoftmaxCrossEntropy()
    value, grad = fused_loss.forward(z, t, mask=mask), fused_loss.backward().copy()
    assert softmax.uses_fused(z.reshape(-1, shape[-1]))
    with compiled.threads_limit(1):
        one_thread = losses.SoftmaxCrossEntropy()
        assert one_thread.forward(z, t, mask=mask) == value
        np.testing.assert_array_equal(one_thread.backward(), grad)
    monkeypatch.setattr(softmax, "uses_fused", lambda z: False)
    numpy_loss = losses.SoftmaxCrossEntropy()
    assert value == pytest.approx(numpy_loss.forward(z, t, mask=mask), rel=1e-6)
    np.testing.assert_allclose(grad, numpy_loss.backward(), rtol=1e-5, atol=1e-9)


def test_cross_entropy_is_stable_for_huge_logits_and_keeps_float32():
    z = np.array([[1e4, -1e4, 0.0], [0.0, 3e4, 3e4]], dtype=np.float32)
    t = np.array([0, 2])
    loss = losses.SoftmaxCrossEntropy()
    value = loss.forward(z, t)
    np.testing.assert_allclose(value, (0.0 + np.log(2.0)) / 2, rtol=1e-6)
    dz = loss.backward()
    assert dz.dtype == np.float32 and np.isfinite(dz).all()
    np.testing.assert_allclose(dz, [[0, 0, 0], [0, 0.25, -0.25]], atol=1e-7)


def test_cross_entropy_gradient_rows_sum_to_zero_and_buffer_is_reused():
    rng = np.random.default_rng(1)
    z = rng.standard_normal((6, 7)).astype(np.float32)
    t = rng.integers(0, 7, 6)
    loss = losses.SoftmaxCrossEntropy()
    loss.forward(z, t)
    d1 = loss.backward()
    np.testing.assert_allclose(d1.sum(axis=1), 0.0, atol=1e-7)
    z_before = z.copy()
    loss.forward(z, t)
    d2 = loss.backward()
    np.testing.assert_array_equal(z, z_before)      # logits are never written
    assert np.shares_memory(d1, d2)                 # no new (N, V) array per step


def test_cross_entropy_nothing_counted_gives_zero():
    loss = losses.SoftmaxCrossEntropy(ignore_index=0)
    z = np.ones((2, 3), dtype=np.float32)
    assert loss.forward(z, np.array([0, 0])) == 0.0 and loss.count == 0
    assert not loss.backward().any()


def test_cross_entropy_bad_input_names_loss_and_shapes():
    loss = losses.SoftmaxCrossEntropy()
    z = np.zeros((2, 3, 5), dtype=np.float32)
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy.*\(2, 3, 5\).*\(2, 3\).*\(3, 2\)"):
        loss.forward(z, np.zeros((3, 2), dtype=np.int64))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy.*\[0, 5\).*\[9, 9\]"):
        loss.forward(z, np.full((2, 3), 9))
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: mask.*\(2, 2\).*\(2, 3\)"):
        loss.forward(z, np.zeros((2, 3), dtype=np.int64), mask=np.ones((2, 2), dtype=bool))


def test_sigmoid_bce_value_gradient_and_stability(float64):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((4, 3, 2)) * 3
    y = (rng.random((4, 3, 2)) > 0.5).astype(np.float64)
    mask = rng.random((4, 3)) > 0.3
    loss = losses.SigmoidBCE()
    value = loss.forward(z, y, mask=mask)
    s = 1 / (1 + np.exp(-z))
    elem = -(y * np.log(s) + (1 - y) * np.log(1 - s))
    m = np.broadcast_to(mask[..., None], z.shape)
    assert loss.count == int(m.sum())
    np.testing.assert_allclose(value, elem[m].mean(), rtol=1e-12)
    dz = loss.backward()
    num = numerical_grad(lambda: losses.SigmoidBCE().forward(z, y, mask=mask), z)
    assert rel_error(dz, num) < 1e-6
    big = np.array([1e4, -1e4])
    assert np.isfinite(losses.SigmoidBCE().forward(big, np.array([0.0, 1.0])))


def test_mse_value_and_gradient(float64):
    rng = np.random.default_rng(3)
    p = rng.standard_normal((5, 2))
    y = rng.standard_normal((5, 2))
    loss = losses.MSE()
    np.testing.assert_allclose(loss.forward(p, y), ((p - y) ** 2).mean())
    d = loss.backward()
    num = numerical_grad(lambda: losses.MSE().forward(p, y), p)
    assert rel_error(d, num) < 1e-6
    mask = np.array([True, False, True, True, False])
    np.testing.assert_allclose(loss.forward(p, y, mask=mask), ((p - y)[mask] ** 2).mean())
    assert loss.count == 6
    with pytest.raises(ValueError, match=r"MSE.*\(5, 2\).*\(5, 3\)"):
        loss.forward(p, np.zeros((5, 3)))
