"""Scratch (not part of rnnlab): the non-GEMM costs around the GEMMs of a word-level step,
and cheaper ways to do them, timed alone on the benchmark shapes.

    nice -n 10 python benchmarks/scratch_decoder.py

1. Decoder + softmax cross-entropy (ptb-small: h (700, 200) -> logits (700, 10000)):
   ``current`` = Dense (GEMM, += bias) + SoftmaxCrossEntropy (max, subtract, exp, sum; backward
   scale + subtract at targets) + Dense backward (dW = h^T d into a temporary then copied,
   db = sum, dh = d W^T);
   ``fused`` = bias folded into the GEMM as an extra row ([h, 1] @ [W; b]), softmax over row
   blocks that fit in L2 (max, subtract, exp, sum, scale for 16 rows at a time), dW and db
   from one GEMM ([h, 1]^T d) written with ``out=``, dh with ``out=``.
2. LSTM backward derivative factors (char: T=100, B=64, H=512), all steps at once over
   strided (T, B, 4, H) views (what recurrent.py does) against the same in time blocks of
   k steps so each block stays in L2.
"""
from __future__ import annotations

import statistics
import time

import numpy as np


def timeit(fn, repeats=15):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def decoder(N=700, H=200, V=10000):
    rng = np.random.default_rng(0)
    f32 = np.float32
    h = rng.standard_normal((N, H), dtype=f32)
    W = rng.uniform(-0.1, 0.1, (H, V)).astype(f32)
    b = rng.uniform(-0.1, 0.1, V).astype(f32)
    t = rng.integers(0, V, N)
    rows = np.arange(N)
    dW, db = np.empty_like(W), np.empty_like(b)
    buf = np.empty((N, V), f32)

    def current():
        logits = h @ W
        logits += b
        z = logits
        zmax = z.max(axis=1, keepdims=True)
        np.subtract(z, zmax, out=buf)
        z_t = buf[rows, t]
        np.exp(buf, out=buf)
        s = buf.sum(axis=1)
        loss = float((np.log(s) - z_t).sum(dtype=np.float64)) / N
        factor = (1.0 / N) / s
        np.multiply(buf, factor[:, None], out=buf)
        buf[rows, t] -= 1.0 / N
        dW[...] = h.T @ buf
        db[...] = buf.sum(axis=0)
        dh = buf @ W.T
        return loss, dh

    # fused: augmented operands, kept between steps as a real layer would keep its buffers
    h1 = np.empty((N, H + 1), f32)
    Wb = np.empty((H + 1, V), f32)
    dWb = np.empty((H + 1, V), f32)
    dh = np.empty((N, H), f32)
    rmax = np.empty((N, 1), f32)
    rsum = np.empty(N, f32)
    block = 16

    def fused():
        h1[:, :H] = h
        h1[:, H] = 1.0
        Wb[:H] = W          # (a real Dense would keep W and b inside Wb and never copy)
        Wb[H] = b
        np.matmul(h1, Wb, out=buf)
        z_t = buf[rows, t].copy()
        for r0 in range(0, N, block):
            e = buf[r0:r0 + block]
            m = rmax[r0:r0 + block]
            np.max(e, axis=1, keepdims=True, out=m)
            e -= m
            np.exp(e, out=e)
            s = rsum[r0:r0 + block]
            np.sum(e, axis=1, out=s)
            e *= ((1.0 / N) / s)[:, None]
        loss = float((np.log(rsum) + rmax[:, 0] - z_t).sum(dtype=np.float64)) / N
        buf[rows, t] -= 1.0 / N
        np.matmul(h1.T, buf, out=dWb)
        np.matmul(buf, Wb[:H].T, out=dh)
        return loss, dh

    l1, d1 = current()
    d1 = d1.copy()
    l2, d2 = fused()
    assert abs(l1 - l2) < 1e-4 and np.abs(d1 - d2).max() < 1e-5, (l1, l2, np.abs(d1 - d2).max())
    gemm = lambda: (h @ W, h.T @ buf, buf @ W.T)  # noqa: E731
    print(f"decoder+loss N={N} H={H} V={V}: current {timeit(current):.2f} ms, fused {timeit(fused):.2f} ms, "
          f"its 3 GEMMs alone {timeit(gemm):.2f} ms")


def lstm_factors(T=100, B=64, H=512, k=4):
    rng = np.random.default_rng(0)
    f32 = np.float32
    Z = rng.random((T, B, 4 * H), dtype=f32)
    Cs = rng.random((T + 1, B, H), dtype=f32)
    TC = rng.random((T, B, H), dtype=f32)
    F = np.empty((T, B, 4, H), f32)
    K = np.empty((T, B, H), f32)

    def factors(Zs, Cp, TCs, Fs, Ks):
        g4 = Zs.reshape(Zs.shape[0], B, 4, H)
        i, f, g, o = g4[:, :, 0], g4[:, :, 1], g4[:, :, 2], g4[:, :, 3]
        Fi, Ff, Fg, Fo = Fs[:, :, 0], Fs[:, :, 1], Fs[:, :, 2], Fs[:, :, 3]
        np.subtract(1.0, i, out=Fi); Fi *= i; Fi *= g  # noqa: E702
        np.subtract(1.0, f, out=Ff); Ff *= f; Ff *= Cp  # noqa: E702
        np.multiply(g, g, out=Fg); np.subtract(1.0, Fg, out=Fg); Fg *= i  # noqa: E702
        np.subtract(1.0, o, out=Fo); Fo *= o; Fo *= TCs  # noqa: E702
        np.multiply(TCs, TCs, out=Ks); np.subtract(1.0, Ks, out=Ks); Ks *= o  # noqa: E702

    whole = lambda: factors(Z, Cs[:-1], TC, F, K)  # noqa: E731

    def blocked():
        for t0 in range(0, T, k):
            t1 = min(T, t0 + k)
            factors(Z[t0:t1], Cs[t0:t1], TC[t0:t1], F[t0:t1], K[t0:t1])

    print(f"LSTM backward factors T={T} B={B} H={H}: all steps at once {timeit(whole):.2f} ms, "
          f"in blocks of {k} steps {timeit(blocked):.2f} ms")


if __name__ == "__main__":
    decoder()
    decoder(N=20 * 35, H=650, V=10000)
    lstm_factors()
    lstm_factors(T=35, B=20, H=200, k=35)
    lstm_factors(T=35, B=20, H=200, k=8)
    lstm_factors(T=1000, B=32, H=64, k=1000)
    lstm_factors(T=1000, B=32, H=64, k=64)
