"""The fused LSTM and GRU kernels (layers/fast/fused.py): the float32 tanh, agreement with the NumPy
loops in float64 and float32, NaN propagation, that the switches pick the path they say.
(test_recurrent.py and the PyTorch parity tests run every check on both paths as well.)"""
import numpy as np
import pytest

from gradcheck import check_layer_gradients, require_numba
from rnnlab import backend
from rnnlab.layers import GRU, LSTM
from rnnlab.layers.fast import FastLoop, compiled, fused, loop_for

MASK = np.array([[1, 1, 1, 0, 0, 0, 0],
                 [1, 0, 1, 1, 1, 1, 1],
                 [0, 0, 0, 0, 0, 0, 0],
                 [1, 1, 1, 1, 1, 1, 1]], dtype=bool)


def compiled_tanh(x):
    out = np.empty_like(x)
    fused.tanh_into(x, out)
    return out


@pytest.mark.parametrize("how", ["formula", "compiled"])
def test_float32_tanh_is_within_6_ulps_and_keeps_nan_and_limits(how):
    """The rational tanh as written in NumPy operations, and as the kernels compile it (with
    fused multiply-adds and reassociation allowed), against float64's tanh."""
    if how == "compiled":
        require_numba()
    tanh = fused.tanh32 if how == "formula" else compiled_tanh
    x = np.concatenate([np.linspace(-12, 12, 1_200_001), np.geomspace(1e-30, 1, 20_001)]).astype(np.float32)
    x = np.concatenate([x, -x])
    exact = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    err = np.abs(tanh(x).astype(np.float64) - exact) / ulp
    assert err.max() <= 6, f"max error {err.max():.2f} ulps at x = {x[np.argmax(err)]}"
    assert err.mean() < 1.0
    out = tanh(np.array([np.nan, np.inf, -np.inf, 0.0], np.float32))
    assert np.isnan(out[0]) and out[1] == 1.0 and out[2] == -1.0 and out[3] == 0.0


def run_layer(cls, fused_on, monkeypatch, x, mask=None, seed=0):
    """Forward and backward of one layer (outputs, states and every gradient), on one path (the
    fused kernels called per step: the compiled loops are test_compiled.py's)."""
    monkeypatch.setattr(FastLoop, "FUSED", fused_on)
    monkeypatch.setattr(FastLoop, "COMPILED", False)
    layer = cls(6, return_sequences=True, return_state=True, seed=seed, bias_initializer="uniform:0.5")
    rng = np.random.default_rng(seed + 1)
    n_states = 2 if cls is LSTM else 1
    init = [rng.standard_normal((x.shape[0], 6)).astype(x.dtype) for _ in range(n_states)]
    y, *states = layer.forward(x, mask=mask, initial_state=init)
    dy = rng.standard_normal(y.shape).astype(x.dtype)
    dx = layer.backward(dy, [rng.standard_normal(s.shape).astype(x.dtype) for s in states])
    return [y, *states, dx, *layer.dinitial_state, *layer.grads]


@pytest.mark.parametrize("cls", [LSTM, GRU])
@pytest.mark.parametrize("mask", [None, MASK], ids=["unmasked", "masked"])
def test_fused_equals_numpy_loops_in_float64(float64, monkeypatch, cls, mask):
    require_numba()
    x = np.random.default_rng(5).standard_normal((4, 7, 3))
    numpy_path = run_layer(cls, False, monkeypatch, x, mask)
    fused_path = run_layer(cls, True, monkeypatch, x, mask)
    assert len(numpy_path) == len(fused_path) == (9 if cls is LSTM else 7)
    for k, (a, b) in enumerate(zip(numpy_path, fused_path)):
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-13, err_msg=f"array {k}")


@pytest.mark.parametrize("cls", [LSTM, GRU])
@pytest.mark.parametrize("mask", [None, MASK], ids=["unmasked", "masked"])
def test_fused_float64_gradient_check(float64, monkeypatch, cls, mask):
    require_numba()
    monkeypatch.setattr(FastLoop, "FUSED", True)
    layer = cls(3, return_sequences=True, return_state=True, seed=2, bias_initializer="uniform:0.5")
    check_layer_gradients(layer, np.random.default_rng(6).standard_normal((4, 7, 2)),
                          {"mask": mask} if mask is not None else {})


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_fused_float32_agrees_with_numpy_loops(monkeypatch, cls):
    """float32: the kernels' rational tanh against NumPy's tanh."""
    require_numba()
    assert backend.floatx() == "float32"
    x = np.random.default_rng(7).standard_normal((4, 7, 3)).astype(np.float32)
    numpy_path = run_layer(cls, False, monkeypatch, x, MASK)
    fused_path = run_layer(cls, True, monkeypatch, x, MASK)
    for a, b in zip(numpy_path, fused_path):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-6)


@pytest.mark.parametrize("cls,kernels,loops", [
    (LSTM, ("lstm_forward_step", "lstm_backward_step"), ("lstm_forward_into", "lstm_backward_into")),
    (GRU, ("gru_forward_step", "gru_backward_step"), ("gru_forward_into", "gru_backward_into"))])
def test_switch_picks_the_path(monkeypatch, cls, kernels, loops):
    """FUSED=True, COMPILED=False runs the kernels from Python once per step each way; COMPILED=True
    runs one compiled call each way instead (the kernels run inside it, not from Python); FUSED=False
    calls neither, whatever COMPILED says."""
    require_numba()
    calls = {}
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    paths = [(True, False, 5, 0), (False, False, 0, 0), (False, True, 0, 0)]
    if compiled.available():
        paths.append((True, True, 0, 1))
    for fused_on, compiled_on, _, _ in paths:
        # compile first: numba compiles a loop by reading the kernels it calls from the module,
        # which must still hold the kernels then, not the counting wrappers below
        monkeypatch.setattr(FastLoop, "FUSED", fused_on)
        monkeypatch.setattr(FastLoop, "COMPILED", compiled_on)
        layer = cls(4, return_sequences=True, seed=0)
        layer.backward(np.ones_like(layer.forward(x)))

    def count(module, name):
        function = getattr(module, name)

        def counting(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        monkeypatch.setattr(module, name, counting)
    for name in kernels:
        count(fused, name)
    for name in loops:
        count(compiled, name)
    for fused_on, compiled_on, per_kernel, per_loop in paths:
        monkeypatch.setattr(FastLoop, "FUSED", fused_on)
        monkeypatch.setattr(FastLoop, "COMPILED", compiled_on)
        calls.update({name: 0 for name in kernels + loops})
        layer = cls(4, return_sequences=True, seed=0)
        layer.backward(np.ones_like(layer.forward(x)))
        assert calls == {**{name: per_kernel for name in kernels}, **{name: per_loop for name in loops}}


def test_nan_input_reaches_the_output(monkeypatch):
    """No fast-math 'no NaNs' assumption: a NaN must survive the kernels (training stops on it)."""
    require_numba()
    monkeypatch.setattr(FastLoop, "FUSED", True)
    layer = LSTM(4, return_sequences=True, seed=0)
    x = np.ones((2, 3, 2), np.float32)
    layer.check_finite = lambda *args, **kwargs: None     # let the NaN past the input check
    x[0, 1, 0] = np.nan
    y = layer.forward(x)
    assert np.isnan(y[0, 1:]).all() and np.isfinite(y[0, 0]).all() and np.isfinite(y[1]).all()


def test_switches(monkeypatch):
    assert not loop_for(GRU(2, reset_after=False))._fused(np.float32)   # no kernels for this form
    layer = LSTM(2)
    monkeypatch.setattr(FastLoop, "FUSED", False)
    assert not loop_for(layer)._fused(np.float32)
    monkeypatch.setattr(FastLoop, "FUSED", None)
    monkeypatch.setenv("RNNLAB_FUSED", "0")
    assert not loop_for(layer)._fused(np.float32)
    monkeypatch.setattr(fused, "numba", None)
    monkeypatch.delenv("RNNLAB_FUSED")
    assert not loop_for(layer)._fused(np.float32)       # numba absent: the NumPy loops, silently
    monkeypatch.setattr(FastLoop, "FUSED", True)
    with pytest.raises(RuntimeError, match="needs numba"):
        loop_for(layer)._fused(np.float32)
    assert not loop_for(layer)._fused(np.float16)       # no kernel for float16: the NumPy loops


def test_compiled_switches(monkeypatch):
    """COMPILED: None = with RNNLAB_COMPILED=1 when available (numba, scipy), only where the fused
    kernels run; True without what it needs is a clear error."""
    require_numba()
    layer = LSTM(2)
    monkeypatch.setattr(FastLoop, "FUSED", True)
    monkeypatch.setattr(FastLoop, "COMPILED", None)
    monkeypatch.delenv("RNNLAB_COMPILED", raising=False)
    assert not loop_for(layer)._compiled(np.float32)    # opt-in: off unless RNNLAB_COMPILED=1
    monkeypatch.setenv("RNNLAB_COMPILED", "1")
    assert loop_for(layer)._compiled(np.float32) is compiled.available()
    monkeypatch.setenv("RNNLAB_COMPILED", "0")
    assert not compiled.available() and not loop_for(layer)._compiled(np.float32)
    assert "RNNLAB_COMPILED=0" in compiled.missing()
    monkeypatch.setattr(FastLoop, "COMPILED", True)
    with pytest.raises(RuntimeError, match="COMPILED = True, but RNNLAB_COMPILED=0"):
        loop_for(layer)._compiled(np.float32)
    monkeypatch.delenv("RNNLAB_COMPILED")
    monkeypatch.setattr(FastLoop, "FUSED", False)
    assert not loop_for(layer)._compiled(np.float32)    # built from the fused kernels: off with them
    monkeypatch.setattr(FastLoop, "FUSED", True)
    assert not loop_for(GRU(2, reset_after=False))._compiled(np.float32)
    assert not loop_for(layer)._compiled(np.float16)


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_projection_in_chunks_is_exact(float64, monkeypatch, cls):
    """The fused loops project the inputs a chunk of steps at a time; chunks of 2 steps over
    T = 7 (2 + 2 + 2 + 1) must give what one GEMM over all steps gives."""
    require_numba()
    x = np.random.default_rng(8).standard_normal((4, 7, 3))
    whole = run_layer(cls, True, monkeypatch, x, MASK)
    gates = cls.GATES
    monkeypatch.setattr(FastLoop, "PROJECTION_CHUNK", 2 * 4 * gates * 6)
    monkeypatch.setattr(FastLoop, "PROJECTION_MIN_ROWS", 1)
    calls = []
    original = FastLoop._projected_chunks

    def recording(self, X):
        for start, stop in original(self, X):
            calls.append((start, stop))
            yield start, stop
    monkeypatch.setattr(FastLoop, "_projected_chunks", recording)
    chunked = run_layer(cls, True, monkeypatch, x, MASK)
    assert calls == [(0, 2), (2, 4), (4, 6), (6, 7)]
    for a, b in zip(whole, chunked):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-14)


def test_float32_exp_is_within_1e6_relative_and_keeps_nan_and_limits():
    """The kernels' float32 exp (as the loss's softmax runs it) against float64's exp over the
    whole float32 range, and its limits: zero below about 2^-125 and at -inf, inf beyond the
    float32 range, NaN stays NaN, exp(0) = 1 exactly."""
    require_numba()
    x = np.concatenate([np.linspace(-87, 88.7, 2_000_001), np.geomspace(1e-30, 1, 20_001)]).astype(np.float32)
    x = np.concatenate([x, -x[x < 87]])
    out = np.empty_like(x)
    fused.exp_into(x, out)
    exact = np.exp(x.astype(np.float64))
    normal = exact > 2.0 ** -125
    rel = np.abs(out[normal] - exact[normal]) / exact[normal]
    assert rel.max() < 1e-6, f"relative error {rel.max():.2e} at x = {x[normal][np.argmax(rel)]}"
    assert np.all(out[~normal] <= 2.0 ** -125)
    limits = np.array([np.nan, np.inf, -np.inf, 0.0, 89.0, 1e30, -88.0, -1e30], np.float32)
    out = np.empty_like(limits)
    fused.exp_into(limits, out)
    assert np.isnan(out[0]) and out[1] == np.inf and out[2] == 0.0 and out[3] == 1.0
    assert out[4] == np.inf and out[5] == np.inf and out[6] == 0.0 and out[7] == 0.0


def test_exp_rows_gives_each_rows_max_shifted_exp_and_sum():
    require_numba()
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((9, 301)) * 10).astype(np.float32)
    z[4] += 500.0                     # a row far from the others keeps its own shift
    z[7, 5] = np.nan
    e, shift, sums = np.empty_like(z), np.empty(9, np.float32), np.empty(9, np.float32)
    fused.exp_rows(z, e, shift, sums)
    ok = np.arange(9) != 7
    np.testing.assert_array_equal(shift[ok], z[ok].max(axis=1))
    exact = np.exp((z - z.max(axis=1, keepdims=True)).astype(np.float64))   # the float32 difference
    np.testing.assert_allclose(e[ok], exact[ok], rtol=1e-6, atol=1e-30)
    np.testing.assert_allclose(sums[ok], exact[ok].sum(axis=1), rtol=1e-6)
    assert np.isnan(sums[7])
