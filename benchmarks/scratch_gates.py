"""Scratch (not part of rnnlab): ways to write an LSTM layer's time loop, timed on the
benchmark shapes, to choose what ``layers/recurrent.py`` should do.

    nice -n 10 python benchmarks/scratch_gates.py [--shapes ptb-small,char,long-small] [--threads 1]

Each variant runs one LSTM layer, forward and backward, over x (B, T, D) with a carried state,
in float32, and is checked against the plain variant (float64, small shapes) first:

- ``plain``: the textbook loop: per step, h @ U + x_t W + b, four activations on slices,
  the backward computes every derivative factor inside its loop.
- ``fused``: time-major buffers allocated once; x W for all steps in one GEMM; per step only
  h @ U, then ONE tanh over all 4H gate columns (the sigmoid gates use
  sigmoid(a) = (tanh(a / 2) + 1) / 2, with the 1/2 folded into scaled copies of W, U, b) and an
  affine fix-up; the backward precomputes all gate-derivative factors for all steps with a few
  large vectorised operations before its loop, multiplies the i, f, g factors by dc in one
  broadcast, uses a contiguous U^T, and does dW, dU, db, dx as one GEMM each after the loop.
- ``fused1``: ``fused`` with the BLAS limited to one thread inside the time loops only (the
  small per-step GEMMs), the large GEMMs keep all threads.
- ``numba`` (when numba imports): ``fused`` with each step's gate math in one jitted loop.

Also printed: the GEMM-only time of the same layer (the multiplies alone) and PyTorch's
``nn.LSTM`` forward + backward on the same shapes.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover
    threadpool_limits = None

SHAPES = {  # B, T, D, H
    "ptb-small": (20, 35, 200, 200),
    "ptb-medium": (20, 35, 650, 650),
    "char": (64, 100, 512, 512),
    "long-small": (32, 1000, 64, 64),
}


def sigmoid(x):
    return 0.5 * (np.tanh(0.5 * x) + 1.0)


# ---- plain ---------------------------------------------------------------------------------


class Plain:
    def __init__(self, W, U, b):
        self.W, self.U, self.b = W, U, b

    def forward(self, x, h, c):
        B, T, D = x.shape
        H = self.U.shape[0]
        self.cache = []
        ys = np.empty((B, T, H), dtype=x.dtype)
        for t in range(T):
            a = x[:, t] @ self.W + h @ self.U + self.b
            i, f, g, o = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
            c_new = f * c + i * g
            tc = np.tanh(c_new)
            h_new = o * tc
            self.cache.append((x[:, t], h, c, i, f, g, o, tc))
            h, c = h_new, c_new
            ys[:, t] = h
        return ys, h, c

    def backward(self, dy):
        B, T, H = dy.shape
        dW, dU, db = np.zeros_like(self.W), np.zeros_like(self.U), np.zeros_like(self.b)
        dx = np.empty((B, T, self.W.shape[0]), dtype=dy.dtype)
        dh_next = np.zeros((B, H), dtype=dy.dtype)
        dc_next = np.zeros((B, H), dtype=dy.dtype)
        for t in reversed(range(T)):
            xt, hp, cp, i, f, g, o, tc = self.cache[t]
            dh = dy[:, t] + dh_next
            dc = dc_next + dh * o * (1 - tc * tc)
            da = np.concatenate([dc * g * i * (1 - i), dc * cp * f * (1 - f), dc * i * (1 - g * g),
                                 dh * tc * o * (1 - o)], axis=1)
            dW += xt.T @ da
            dU += hp.T @ da
            db += da.sum(0)
            dx[:, t] = da @ self.W.T
            dh_next = da @ self.U.T
            dc_next = dc * f
        return dx, (dW, dU, db)


# ---- fused ---------------------------------------------------------------------------------


class Fused:
    """Time-major, preallocated, one tanh per step, factors precomputed for the backward."""

    def __init__(self, W, U, b, step_threads=None, numba_kernels=None):
        self.W, self.U, self.b = W, U, b
        H = U.shape[0]
        # sigmoid(a) = (tanh(a/2) + 1)/2: scale the i, f, o columns by 1/2 so one tanh does all
        scale = np.full(4 * H, 0.5, dtype=W.dtype)
        scale[2 * H:3 * H] = 1.0
        self.scale = scale
        self.alpha = scale.copy()                      # tanh -> gate: y = alpha * t + beta
        self.beta = np.where(scale == 0.5, 0.5, 0.0).astype(W.dtype)
        self.step_threads = step_threads
        self.kern = numba_kernels
        self._bufs = None

    def _buffers(self, B, T, H, dtype):
        key = (B, T, H, dtype)
        if self._bufs is None or self._bufs[0] != key:
            e = lambda *s: np.empty(s, dtype=dtype)  # noqa: E731
            self._bufs = (key, dict(A=e(T, B, 4 * H), C=e(T + 1, B, H), TC=e(T, B, H), Y=e(T + 1, B, H),
                                     tmp=e(B, 4 * H), ig=e(B, H), F=e(T, B, 3, H), P=e(T, B, H),
                                     Q=e(T, B, H), dG=e(T, B, 4 * H), dh=e(B, H), dhn=e(B, H), dc=e(B, H),
                                     t1=e(B, H)))
        return self._bufs[1]

    def _limit(self):
        if self.step_threads is None or threadpool_limits is None:
            import contextlib
            return contextlib.nullcontext()
        return threadpool_limits(self.step_threads, user_api="blas")

    def forward(self, x, h0, c0):
        B, T, D = x.shape
        H = self.U.shape[0]
        buf = self._buffers(B, T, H, x.dtype)
        A, C, TC, Y = buf["A"], buf["C"], buf["TC"], buf["Y"]
        Ws, Us, bs = self.W * self.scale, self.U * self.scale, self.b * self.scale
        xt = np.ascontiguousarray(x.transpose(1, 0, 2))          # (T, B, D)
        self.xt = xt
        np.matmul(xt.reshape(T * B, D), Ws, out=A.reshape(T * B, 4 * H))
        A += bs
        C[0] = c0
        Y[0] = h0
        tmp, ig = buf["tmp"], buf["ig"]
        alpha, beta = self.alpha, self.beta
        with self._limit():
            for t in range(T):
                a = A[t]
                np.matmul(Y[t], Us, out=tmp)
                if self.kern is not None:
                    self.kern[0](a, tmp, C[t], C[t + 1], TC[t], Y[t + 1])
                    continue
                a += tmp
                np.tanh(a, out=a)
                a *= alpha
                a += beta
                np.multiply(a[:, :H], a[:, 2 * H:3 * H], out=ig)         # i * g
                np.multiply(a[:, H:2 * H], C[t], out=C[t + 1])           # f * c_prev
                C[t + 1] += ig
                np.tanh(C[t + 1], out=TC[t])
                np.multiply(a[:, 3 * H:], TC[t], out=Y[t + 1])
        return Y[1:].transpose(1, 0, 2), Y[T], C[T]

    def backward(self, dy):
        B, T, H = dy.shape
        buf = self._bufs[1]
        A, C, TC, Y, F, P, Q, dG = buf["A"], buf["C"], buf["TC"], buf["Y"], buf["F"], buf["P"], buf["Q"], buf["dG"]
        A4 = A.reshape(T, B, 4, H)
        i, f, g, o = A4[:, :, 0], A4[:, :, 1], A4[:, :, 2], A4[:, :, 3]
        # gate-derivative factors for all steps at once (large vectorised ops, no loop)
        np.multiply(i, 1 - i, out=F[:, :, 0]); F[:, :, 0] *= g                 # di = dc * g i(1-i)
        np.multiply(f, 1 - f, out=F[:, :, 1]); F[:, :, 1] *= C[:-1]             # df = dc * c_prev f(1-f)
        np.multiply(g, g, out=F[:, :, 2]); np.subtract(1, F[:, :, 2], out=F[:, :, 2]); F[:, :, 2] *= i  # dg
        np.multiply(o, 1 - o, out=P); P *= TC                                  # do = dh * tanh(c) o(1-o)
        np.multiply(TC, TC, out=Q); np.subtract(1, Q, out=Q); Q *= o           # dc += dh * o (1-tanh^2 c)
        fT = np.ascontiguousarray(f)
        dyt = np.ascontiguousarray(dy.transpose(1, 0, 2))
        UT = np.ascontiguousarray(self.U.T)
        dG4 = dG.reshape(T, B, 4, H)
        dh, dhn, dc, t1 = buf["dh"], buf["dhn"], buf["dc"], buf["t1"]
        dhn[...] = 0
        dc[...] = 0
        with self._limit():
            for t in reversed(range(T)):
                if self.kern is not None:
                    self.kern[1](dyt[t], dhn, dc, Q[t], P[t], F[t], fT[t], dG4[t])
                else:
                    np.add(dyt[t], dhn, out=dh)
                    np.multiply(dh, Q[t], out=t1)
                    dc += t1
                    np.multiply(F[t], dc[:, None, :], out=dG4[t, :, :3])
                    np.multiply(dh, P[t], out=dG4[t, :, 3])
                    dc *= fT[t]
                np.matmul(dG[t], UT, out=dhn)
        G2 = dG.reshape(T * B, 4 * H)
        dW = self.xt.reshape(T * B, -1).T @ G2
        dU = Y[:-1].reshape(T * B, H).T @ G2
        db = G2.sum(0)
        dx = (G2 @ self.W.T).reshape(T, B, -1).transpose(1, 0, 2)
        return dx, (dW, dU, db)


def numba_kernels():
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(cache=False, fastmath=True)
    def fwd(a, tmp, c_prev, c_out, tc_out, h_out):
        B, H4 = a.shape
        H = H4 // 4
        for bi in range(B):
            for j in range(4 * H):
                v = np.tanh(a[bi, j] + tmp[bi, j])
                a[bi, j] = v if (j >= 2 * H and j < 3 * H) else 0.5 * v + 0.5
            for j in range(H):
                cn = a[bi, H + j] * c_prev[bi, j] + a[bi, j] * a[bi, 2 * H + j]
                c_out[bi, j] = cn
                tcv = np.tanh(cn)
                tc_out[bi, j] = tcv
                h_out[bi, j] = a[bi, 3 * H + j] * tcv

    @numba.njit(cache=False, fastmath=True)
    def bwd(dy, dhn, dc, Q, P, F, f, dG4):
        B, H = dy.shape
        for bi in range(B):
            for j in range(H):
                dh = dy[bi, j] + dhn[bi, j]
                d = dc[bi, j] + dh * Q[bi, j]
                dG4[bi, 0, j] = d * F[bi, 0, j]
                dG4[bi, 1, j] = d * F[bi, 1, j]
                dG4[bi, 2, j] = d * F[bi, 2, j]
                dG4[bi, 3, j] = dh * P[bi, j]
                dc[bi, j] = d * f[bi, j]

    return fwd, bwd


# ---- checks and timing ---------------------------------------------------------------------------


def make(B, T, D, H, dtype, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.uniform(-0.1, 0.1, (D, 4 * H)).astype(dtype)
    U = rng.uniform(-0.1, 0.1, (H, 4 * H)).astype(dtype)
    b = rng.uniform(-0.1, 0.1, 4 * H).astype(dtype)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    h0 = rng.standard_normal((B, H)).astype(dtype) * 0.1
    c0 = rng.standard_normal((B, H)).astype(dtype) * 0.1
    dy = rng.standard_normal((B, T, H)).astype(dtype)
    return W, U, b, x, h0, c0, dy


def check(kern):
    W, U, b, x, h0, c0, dy = make(3, 5, 4, 6, np.float64)
    ref = Plain(W, U, b)
    y0, *_ = ref.forward(x, h0, c0)
    dx0, g0 = ref.backward(dy)
    variants = {"fused": Fused(W, U, b)}
    if kern is not None:
        variants["numba"] = Fused(W, U, b, numba_kernels=kern)
    for name, layer in variants.items():
        y, *_ = layer.forward(x, h0, c0)
        dx, g = layer.backward(dy)
        err = max(np.abs(y - y0).max(), np.abs(dx - dx0).max(), *(np.abs(a - b).max() for a, b in zip(g, g0)))
        assert err < 1e-10, f"{name} disagrees with plain: {err}"
    print("variants agree with plain (float64, max abs diff < 1e-10)")


def timeit(fn, repeats):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def gemm_only(B, T, D, H, repeats, step_threads=None):
    rng = np.random.default_rng(0)
    f32 = np.float32
    x = rng.standard_normal((T * B, D), dtype=f32)
    W = rng.standard_normal((D, 4 * H), dtype=f32)
    U = rng.standard_normal((H, 4 * H), dtype=f32)
    UT = np.ascontiguousarray(U.T)
    G = rng.standard_normal((T * B, 4 * H), dtype=f32)
    h = rng.standard_normal((B, H), dtype=f32)
    out = np.empty((B, 4 * H), f32)
    dh = np.empty((B, H), f32)
    Hs = rng.standard_normal((T * B, H), dtype=f32)

    def run():
        x @ W
        ctx = threadpool_limits(step_threads, user_api="blas") if step_threads else None
        if ctx:
            ctx.__enter__()
        for t in range(T):
            np.matmul(h, U, out=out)
        for t in range(T):
            np.matmul(G[t * B:(t + 1) * B], UT, out=dh)
        if ctx:
            ctx.__exit__(None, None, None)
        x.T @ G
        Hs.T @ G
        G @ W.T

    return timeit(run, repeats)


def torch_time(B, T, D, H, repeats, threads):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    lstm = torch.nn.LSTM(D, H, batch_first=True)
    x = torch.randn(B, T, D, requires_grad=True)
    dy = torch.randn(B, T, H)
    state = (torch.zeros(1, B, H), torch.zeros(1, B, H))

    def run():
        y, _ = lstm(x, state)
        y.backward(dy)

    return timeit(run, repeats)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shapes", default="ptb-small,char,long-small")
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    kern = numba_kernels()
    check(kern)
    from threadpoolctl import threadpool_info
    threads = [m for m in threadpool_info() if m["user_api"] == "blas"][0]["num_threads"]
    print(f"BLAS threads {threads}; numba {'available' if kern else 'not installed'}")
    print(f"{'shape':<11} {'variant':<8} {'fwd+bwd ms':>10}  (one LSTM layer)")
    for name in args.shapes.split(","):
        B, T, D, H = SHAPES[name]
        W, U, b, x, h0, c0, dy = make(B, T, D, H, np.float32)
        variants = {"plain": Plain(W, U, b), "fused": Fused(W, U, b), "fused1": Fused(W, U, b, step_threads=1)}
        if kern is not None:
            variants["numba"] = Fused(W, U, b, numba_kernels=kern)
            variants["numba1"] = Fused(W, U, b, step_threads=1, numba_kernels=kern)
        for vname, layer in variants.items():
            def run(layer=layer):
                layer.forward(x, h0, c0)
                layer.backward(dy)
            print(f"{name:<11} {vname:<8} {timeit(run, args.repeats):10.2f}")
        print(f"{name:<11} {'gemm':<8} {gemm_only(B, T, D, H, args.repeats):10.2f}")
        print(f"{name:<11} {'gemm1':<8} {gemm_only(B, T, D, H, args.repeats, 1):10.2f}")
        tt = torch_time(B, T, D, H, args.repeats, threads)
        if tt is not None:
            print(f"{name:<11} {'torch':<8} {tt:10.2f}")


if __name__ == "__main__":
    main()
