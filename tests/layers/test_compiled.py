"""The compiled LSTM time loops (layers/fast/compiled.py): equal to an LSTM layer's own forward and
backward (its NumPy loops and its fused-kernel loops) in float64 to 1e-12, close in float32,
identical bit for bit with 1 and 2 threads, and clear errors on wrong buffers."""
import os
import threading

import numpy as np
import pytest

import rnnlab
from rnnlab import threads as thread_policy
from rnnlab.layers import GRU, LSTM
from rnnlab.layers.fast import compiled

# lengths 7, 0 and partial: masked tails, an all-masked row, full rows
LENGTHS = np.array([7, 3, 0, 7, 5, 1, 7, 6, 2])


def require_compiled():
    """Outside CI a missing numba or scipy skips with the reason; in CI it is an error (the test
    extra installs both, so the compiled loop always runs there)."""
    if not compiled.available():
        if os.environ.get("CI"):
            raise ImportError(f"CI must test the compiled LSTM loop, but {compiled.missing()}")
        pytest.skip(f"compiled LSTM loop: {compiled.missing()}")


def assert_close(actual, expected, rtol, what):
    """Relative to the array's scale (an entry near zero is held to rtol * max |expected|)."""
    scale = float(np.max(np.abs(expected))) or 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def run_layer(cls, x, mask, dtype, seed=0):
    """An LSTM or GRU layer's forward and backward on x (B, T, D): its outputs, gradients, and
    the random initial states and output gradients it ran on."""
    B, T, D = x.shape
    layer = cls(6, return_sequences=True, return_state=True, seed=seed, bias_initializer="uniform:0.5")
    n_states = 2 if cls is LSTM else 1
    rng = np.random.default_rng(seed + 1)
    init = [rng.standard_normal((B, 6)).astype(dtype) for _ in range(n_states)]
    y, *states = layer.forward(x, mask=mask, initial_state=init)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dstates = [rng.standard_normal((B, 6)).astype(dtype) for _ in range(n_states)]
    dx = layer.backward(dy, dstates)
    out = {"y": y, "h": states[0], "dx": dx, "dh0": layer.dinitial_state[0],
           "dW": layer.grads[0], "dU": layer.grads[1], "db": layer.grads[2]}
    if cls is LSTM:
        out.update(c=states[1], dc0=layer.dinitial_state[1])
    return layer, init, dy, dstates, {k: np.array(v) for k, v in out.items()}


def run_compiled(layer, x, mask, init, dy, dstates, threads):
    """The same forward and backward through the compiled loops' plain interface, with the input
    projection and the input-side gradients as the layer computes them (GEMMs outside the loop)."""
    W, U, b = (np.array(p) for p in layer.params)
    B, T, D = x.shape
    x_tm = np.ascontiguousarray(x.transpose(1, 0, 2))
    mask_tm = None if mask is None else np.ascontiguousarray(mask.T)
    m = 1.0 if mask is None else mask_tm[..., None]
    dH = dy.transpose(1, 0, 2) * m
    out = {}
    if isinstance(layer, LSTM):
        Hs, Cs, TC, gates = compiled.lstm_forward(x_tm @ W + b, U, *init, mask=mask_tm, threads=threads)
        dxz, dU, dh0, dc0 = compiled.lstm_backward(gates, U, Hs, Cs, TC, dH, *dstates, mask=mask_tm,
                                                   threads=threads)
        out.update(c=Cs[T], dc0=dc0, db=dxz.sum(axis=(0, 1)))
    else:
        Hs, gates, HZ = compiled.gru_forward(x_tm @ W + b[0], U, b[1], *init, mask=mask_tm, threads=threads)
        dxz, dU, db_rec, dh0 = compiled.gru_backward(gates, HZ, U, Hs, dH, *dstates, mask=mask_tm,
                                                     threads=threads)
        out.update(db=np.stack([dxz.sum(axis=(0, 1)), db_rec]))
    out.update(y=(Hs[1:] * m).transpose(1, 0, 2), h=Hs[T], dx=(dxz @ W.T).transpose(1, 0, 2), dh0=dh0,
               dW=x_tm.reshape(T * B, D).T @ dxz.reshape(T * B, -1), dU=dU)
    return out


def inputs(dtype, masked, B=9, T=7, D=5):
    x = np.random.default_rng(3).standard_normal((B, T, D)).astype(dtype)
    mask = None
    if masked:
        mask = np.arange(T)[None, :] < LENGTHS[:B, None]
    return x, mask


@pytest.mark.parametrize("cls", [LSTM, GRU])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("threads, transposed", [(1, False), (2, True)])
def test_equals_the_layer_in_float64(float64, both_kernel_paths, monkeypatch, cls, masked, threads, transposed):
    """Outputs, final states, dx, the initial states' gradients, dW, dU, db: to 1e-12 of the
    layer's own loops (NumPy, and fused kernels), with either layout of the weight."""
    require_compiled()
    monkeypatch.setattr(compiled, "TRANSPOSED_WEIGHTS", transposed)
    x, mask = inputs(np.float64, masked)
    layer, init, dy, dstates, expected = run_layer(cls, x, mask, np.float64)
    got = run_compiled(layer, x, mask, init, dy, dstates, threads)
    assert set(got) == set(expected)
    for name in expected:
        assert_close(got[name], expected[name], 1e-12, name)


@pytest.mark.parametrize("cls", [LSTM, GRU])
@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
def test_close_to_the_layer_in_float32(both_kernel_paths, cls, masked):
    require_compiled()
    assert rnnlab.backend.floatx() == "float32"
    x, mask = inputs(np.float32, masked)
    layer, init, dy, dstates, expected = run_layer(cls, x, mask, np.float32)
    got = run_compiled(layer, x, mask, init, dy, dstates, 2)
    for name in expected:
        assert got[name].dtype == np.float32, name
        assert_close(got[name], expected[name], 2e-5, name)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_one_and_two_threads_give_identical_bits(kind, dtype):
    """The batch is cut into blocks by its size alone; a block computes the same numbers on any
    thread, so 1 and 2 threads agree bit for bit (odd B: blocks of 9 and 8 rows)."""
    require_compiled()
    B, T, H = 17, 30, 8
    G = 4 * H if kind == "lstm" else 3 * H
    rng = np.random.default_rng(7)
    xz = rng.standard_normal((T, B, G)).astype(dtype)
    U = (0.4 * rng.standard_normal((H, G))).astype(dtype)
    h0, c0 = rng.standard_normal((2, B, H)).astype(dtype)
    b_rec = rng.standard_normal(G).astype(dtype)
    mask = (np.arange(T)[:, None] < rng.integers(0, T + 1, B)[None, :])
    dH = rng.standard_normal((T, B, H)).astype(dtype)
    dh, dc = rng.standard_normal((2, B, H)).astype(dtype)
    results = []
    for threads in (1, 2):
        if kind == "lstm":
            Hs, Cs, TC, gates = compiled.lstm_forward(xz, U, h0, c0, mask=mask, threads=threads)
            grads = compiled.lstm_backward(gates, U, Hs, Cs, TC, dH, dh, dc, mask=mask, threads=threads)
            results.append((Hs, Cs, TC, gates) + grads)
        else:
            Hs, gates, HZ = compiled.gru_forward(xz, U, b_rec, h0, mask=mask, threads=threads)
            grads = compiled.gru_backward(gates, HZ, U, Hs, dH, dh, mask=mask, threads=threads)
            results.append((Hs, gates, HZ) + grads)
    for one, two in zip(*results):
        assert one.dtype == dtype
        np.testing.assert_array_equal(one, two)


def test_two_calls_at_once_equal_two_calls_in_turn():
    """Two directions of a bidirectional layer on two threads at once, each itself on 2 threads:
    the same bits as one after the other, and the BLAS's thread setting restored afterwards."""
    require_compiled()
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    before = [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    rng = np.random.default_rng(11)
    T, B, H = 40, 12, 16
    calls = [(rng.standard_normal((T, B, 4 * H)), 0.3 * rng.standard_normal((H, 4 * H))) for _ in range(2)]
    in_turn = [compiled.lstm_forward(xz, U, threads=2) for xz, U in calls]
    with ThreadPoolExecutor(2) as pool:
        at_once = list(pool.map(lambda call: compiled.lstm_forward(*call, threads=2), calls))
    for one, two in zip(in_turn, at_once):
        for a, b in zip(one, two):
            np.testing.assert_array_equal(a, b)
    assert [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"] == before


def test_blocks_are_chosen_by_the_batch_size_alone():
    assert compiled.row_blocks(1) == [(0, 1)]
    assert compiled.row_blocks(7) == [(0, 7)]
    assert compiled.row_blocks(8) == [(0, 4), (4, 8)]
    assert compiled.row_blocks(101) == [(0, 51), (51, 101)]


def test_threads_follow_the_thread_decision(monkeypatch):
    """The compiled loops and the loss's row halves use at most the threads rnnlab.threads
    decided (OPENBLAS_NUM_THREADS=1 at start, --threads 1 or a busy machine: one); with one,
    run_row_halves runs both halves here, in turn."""
    def decided(n):
        monkeypatch.setattr(thread_policy, "_current", thread_policy.ThreadDecision(n, "--threads", 8))

    decided(8)
    assert compiled.default_threads() == compiled.MAX_THREADS
    decided(1)
    assert compiled.default_threads() == 1
    seen = []
    compiled.run_row_halves(lambda r0, r1: seen.append((r0, r1, threading.get_ident())), 10, 2)
    assert [(r0, r1) for r0, r1, _ in seen] == [(0, 5), (5, 10)]
    assert {ident for _, _, ident in seen} == {threading.get_ident()}
    decided(2)
    seen.clear()
    compiled.run_row_halves(lambda r0, r1: seen.append((r0, r1, threading.get_ident())), 10, 2)
    assert sorted((r0, r1) for r0, r1, _ in seen) == [(0, 5), (5, 10)]
    assert len({ident for _, _, ident in seen}) == 2
    seen.clear()
    compiled.run_row_halves(lambda r0, r1: seen.append((r0, r1)), 10, 6)   # halves below min_rows
    assert seen == [(0, 10)]


def test_wrong_buffers_are_named_in_the_error():
    require_compiled()
    T, B, H = 3, 2, 4
    Z, Us = np.zeros((T, B, 4 * H)), np.zeros((H, 4 * H))
    Hs, Cs, TC = np.zeros((T + 1, B, H)), np.zeros((T + 1, B, H)), np.zeros((T, B, H))
    with pytest.raises(ValueError, match=r"LSTM loop: Us must be .* of shape \(4, 16\), got of shape \(4, 12\)"):
        compiled.lstm_forward_into(Z, Us[:, :12].copy(), Hs, Cs, TC)
    with pytest.raises(ValueError, match="Hs must be a C-contiguous float64 .* not C-contiguous"):
        compiled.lstm_forward_into(Z, Us, np.asfortranarray(Hs), Cs, TC)
    with pytest.raises(ValueError, match="Cs must be a C-contiguous float64 .* got float32"):
        compiled.lstm_forward_into(Z, Us, Hs, Cs.astype(np.float32), TC)
    with pytest.raises(ValueError, match="GRU loop: float32 or float64 only"):
        compiled.gru_forward_into(Z.astype(np.float16), Us, Hs[0, 0], Hs, Z)
    with pytest.raises(ValueError, match=r"mask must be \(time, batch\) = \(3, 2\)"):
        compiled.lstm_forward(Z, Us, mask=np.ones((B, T), bool))


def test_switched_off_says_why(monkeypatch):
    monkeypatch.setenv("RNNLAB_FUSED", "0")
    assert not compiled.available()
    assert "RNNLAB_FUSED=0" in compiled.missing() or "not installed" in compiled.missing()
    with pytest.raises(RuntimeError, match="compiled LSTM loop unavailable"):
        compiled.lstm_forward(np.zeros((2, 1, 4)), np.zeros((1, 4)))


def test_run_pair_runs_the_second_call_on_another_thread_and_waits_for_both():
    """run_pair: the second call on a helper thread, each limited to one thread inside, the BLAS
    single-threaded for the pair and restored after; nested
    (already limited to one) it runs the calls in turn; an exception in the first call is raised
    only after the second has finished."""
    import time

    from threadpoolctl import threadpool_info

    def blas_threads():
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]
    before = blas_threads()
    inside = compiled.run_pair(blas_threads, blas_threads)
    assert inside == ([1] * len(before), [1] * len(before)) and blas_threads() == before
    here = threading.get_ident()
    seen = compiled.run_pair(lambda: (threading.get_ident(), compiled.default_threads()),
                             lambda: (threading.get_ident(), compiled.default_threads()))
    assert seen[0] == (here, 1) and seen[1][0] != here and seen[1][1] == 1
    nested = compiled.run_pair(lambda: compiled.run_pair(threading.get_ident, threading.get_ident), lambda: 0)
    assert nested[0] == (here, here)
    finished = []

    def fail():
        raise KeyError("first")
    with pytest.raises(KeyError, match="first"):
        compiled.run_pair(fail, lambda: time.sleep(0.05) or finished.append(True))
    assert finished == [True]
