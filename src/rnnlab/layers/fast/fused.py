"""Fused LSTM and GRU step kernels, compiled by numba when it is installed (``pip install "rnnlab[fast]"``).

Why: with NumPy alone, the elementwise part of one LSTM time step is about ten array calls,
each a pass over the step's gates. For narrow layers (H = 64) the cost of the calls, not the
arithmetic, sets the speed; for wide ones each pass streams the gates through the cache again,
and backward first computes the derivative factors of a block of steps in whole-array passes.
A kernel here does one step's whole elementwise math in one call, reading each value once;
the matrix products stay NumPy's (BLAS) calls. ``LSTM`` and ``GRU`` (reset_after=True, the
default) use these kernels on the NumPy backend when numba can be imported (the class attribute
``FUSED`` and ``RNNLAB_FUSED=0`` switch them off) and fall back to their ufunc sequences
otherwise; both compute the same equations (GRU's are ``steps.gru_step``).

The equations are LSTM's (``steps.lstm_step``, looped in ``loops.LSTMLoop``), on the same
buffers: the sigmoid columns of z arrive halved, so s(z) = 0.5 tanh(z') + 0.5 with z' = z / 2
(exact). Forward, per row b and unit j:

    i, f, o = s(z_i + r_i), s(z_f + r_f), s(z_o + r_o),   g = tanh(z_g + r_g)
    c = f c_prev + i g,   tc = tanh(c),   h = o tc

where z holds x_t W + b and r = h_{t-1} U; the gate values overwrite z. Backward, with m = 1 at a
real step and 0 at a masked one:

    dh = dy_t + dh_next                      (written back over dy_t)
    dc_t = dc + m dh o (1 - tc^2)
    dz = m [dc_t g i(1-i), dc_t c_prev f(1-f), dc_t i (1-g^2), dh tc o(1-o)]
    dc <- dc_t (m f + 1 - m)                 (the carry to step t-1)

tanh: float64 calls the C library's tanh. float32 uses x P(x^2) / Q(x^2) on [-9, 9] (tanh rounds
to +-1 in float32 beyond), a rational fit of our own (``tools/fit_tanh.py``: relative error
7e-9 in exact arithmetic; evaluated in float32 as compiled here, at most 4.9 ulps over 16
million points, mean 0.7, against 1.4 and 0.4 for NumPy's tanh; the tests allow 6), because
the C library's scalar tanhf cannot be vectorized and a vectorized loop is the point.
NaN stays NaN (no fast-math "no NaNs" flag; the clamp is written so that NaN passes).

exp, for the softmax of the loss (``exp_rows``): float64 calls the C library's exp. float32
computes exp(x) = 2^n exp(r) with n = round(x / ln 2) and r = x - n ln 2 in [-ln(2)/2, ln(2)/2]
(Cody-Waite: ln 2 in two parts), exp(r) by its Taylor polynomial of degree 7, 2^n written
straight into a float's exponent bits (relative error below 1e-6 against float64, the tests
check it). Results below about 2^-125 flush to zero, above the float32 range become inf. Why:
NumPy's float32 exp is vectorized only on AVX-512 CPUs; on an AVX2 one (an AMD EPYC, Zen 3) it
took 19 ms for the 700 x 10,000 logits of a PTB batch, and the whole loss forward went from
20.3 to 7.6 ms with this kernel (one core; ``benchmarks/README.md``).
"""
from __future__ import annotations

import math
import os

import numpy as np

try:  # optional: the layers work without it
    import numba
    from numba.extending import intrinsic, overload
except ImportError:  # pragma: no cover - exercised where numba is absent
    numba = None

# tanh(x) ~ x P(x^2) / Q(x^2) for |x| <= 9, coefficients from tools/fit_tanh.py (float32)
_TANH_P = tuple(np.float32(v) for v in (1.0, 0.1308402419090271, 0.003103971714153886,
                                        1.1154465937579516e-05, -2.022583878158457e-08,
                                        5.278227507843347e-11, -8.489380937592647e-14))
_TANH_Q = tuple(np.float32(v) for v in (1.0, 0.4641735255718231, 0.024495240300893784,
                                        0.0002546167524997145))
_CLAMP = np.float32(9.0)
_HALF = np.float32(0.5)   # exact in any precision, so it keeps float32 math in float32
_ONE = np.float32(1.0)
# exp(r) ~ sum_k r^k / k!, k <= 7, for |r| <= ln(2) / 2; ln 2 = _LN2_HIGH + _LN2_LOW (Cody and
# Waite: n ln 2 is exact in the first part for the n here, so x - n ln 2 loses nothing)
_EXP_C = tuple(np.float32(1.0 / math.factorial(k)) for k in range(8))
_LOG2E = np.float32(1.0 / math.log(2.0))
_LN2_HIGH, _LN2_LOW = np.float32(0.693359375), np.float32(-2.12194440e-4)
_EXP_LOW, _EXP_HIGH = np.float32(-87.5), np.float32(88.8)   # n = round(x / ln 2) in [-126, 128]
_ROUNDER = np.float32(1.5 * 2 ** 23)     # y + 1.5 * 2^23 rounds y to an integer in the low bits
_ROUNDER_BITS = np.int32(0x4B400000)    # the bits of 1.5 * 2^23: (those of y + it) - it = round(y)


def tanh32(x):
    """The float32 rational tanh in NumPy operations (the formula the kernels compile)."""
    x = np.asarray(x, dtype=np.float32)
    x = np.where(x > _CLAMP, _CLAMP, np.where(x < -_CLAMP, -_CLAMP, x))
    s = x * x
    p = np.zeros_like(s)
    for coef in reversed(_TANH_P):
        p = p * s + coef
    q = np.zeros_like(s)
    for coef in reversed(_TANH_Q):
        q = q * s + coef
    return x * p / q


def available() -> bool:
    """numba importable and not switched off with RNNLAB_FUSED=0."""
    return numba is not None and os.environ.get("RNNLAB_FUSED", "1") != "0"


if numba is not None:
    P0, P1, P2, P3, P4, P5, P6 = _TANH_P
    Q0, Q1, Q2, Q3 = _TANH_Q
    # no "nnan"/"ninf": a NaN must reach the loss, where training stops on it
    _FLAGS = {"contract", "arcp", "reassoc", "nsz"}
    _jit = dict(fastmath=_FLAGS, error_model="numpy", nogil=True)

    def _kernel(fn):
        """njit with the compiled code cached on disk (about 1 s saved per process), or without
        the cache where numba finds no writable folder for it."""
        try:
            return numba.njit(cache=True, **_jit)(fn)
        except RuntimeError:
            return numba.njit(**_jit)(fn)

    def _float32_math(library_function, float32_formula):
        """A function for the kernels: ``float32_formula`` on float32 (vectorizable), the C
        library's ``library_function`` on float64. Called from Python, it is the latter."""
        def function(x):  # pragma: no cover - replaced by the overload below inside kernels
            return library_function(x)

        @overload(function, fastmath=_FLAGS)
        def by_type(x):
            return float32_formula if x == numba.types.float32 else (lambda x: library_function(x))
        return function

    def _tanh_float32(x):
        if x > _CLAMP:      # written so that NaN falls through both tests
            x = _CLAMP
        elif x < -_CLAMP:
            x = -_CLAMP
        s = x * x
        p = P0 + s * (P1 + s * (P2 + s * (P3 + s * (P4 + s * (P5 + s * P6)))))
        q = Q0 + s * (Q1 + s * (Q2 + s * Q3))
        return x * p / q

    _tanh = _float32_math(math.tanh, _tanh_float32)

    @intrinsic
    def _float_bits(typingctx, x):
        """The int32 whose bits are those of float32 x."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(numba.types.int32))
        return numba.types.int32(numba.types.float32), codegen

    @intrinsic
    def _bits_float(typingctx, x):
        """The float32 whose bits are the low 32 of integer x."""
        def codegen(context, builder, signature, args):
            return builder.bitcast(builder.trunc(args[0], context.get_value_type(numba.types.int32))
                                   if args[0].type.width != 32 else args[0],
                                   context.get_value_type(numba.types.float32))
        return numba.types.float32(x), codegen

    @intrinsic
    def _int32_float(typingctx, x):
        """float32(x) of an integer known to fit in 32 bits, converted as int32: numba's own
        conversion goes through int64, which AVX2 cannot vectorize."""
        def codegen(context, builder, signature, args):
            return builder.sitofp(builder.trunc(args[0], context.get_value_type(numba.types.int32))
                                  if args[0].type.width != 32 else args[0],
                                  context.get_value_type(numba.types.float32))
        return numba.types.float32(x), codegen

    E0, E1, E2, E3, E4, E5, E6, E7 = _EXP_C

    def _exp_float32(x):
        if x < _EXP_LOW:        # written so that NaN falls through both tests
            x = _EXP_LOW
        elif x > _EXP_HIGH:
            x = _EXP_HIGH
        bits = _float_bits(x * _LOG2E + _ROUNDER)
        n = _int32_float(bits - _ROUNDER_BITS)          # round(x / ln 2)
        r = (x - n * _LN2_HIGH) - n * _LN2_LOW          # in [-ln(2) / 2, ln(2) / 2]
        p = E0 + r * (E1 + r * (E2 + r * (E3 + r * (E4 + r * (E5 + r * (E6 + r * E7))))))
        # 2^n = 2 * 2^(n-1): n - 1 + 127 in the exponent field (0 at n = -126: zero), and
        # n = 128 overflows to inf only through the product
        return (p + p) * _bits_float((bits + 126) << 23)

    _exp = _float32_math(math.exp, _exp_float32)

    @_kernel
    def exp_into(x, out):
        """out = exp(x) for 1-D arrays, as ``exp_rows`` computes it (tests check its accuracy)."""
        for k in range(x.shape[0]):
            out[k] = _exp(x[k])

    @_kernel
    def exp_rows(z, e, shift, sums):
        """Softmax's pieces, row by row: z (N, V); writes shift[n] = max_k z[n, k],
        e[n, k] = exp(z[n, k] - shift[n]) and sums[n] = sum_k e[n, k]. Each row is read from
        memory once; its second pass finds it in the cache. A NaN in a row makes its sum NaN."""
        N, V = z.shape
        for n in range(N):
            zn, en = z[n], e[n]
            top = zn[0]
            for k in range(1, V):
                top = max(top, zn[k])
            total = zn[0] - zn[0]       # zero of the row's dtype (NaN when z[n, 0] is)
            for k in range(V):
                v = _exp(zn[k] - top)
                en[k] = v
                total += v
            shift[n], sums[n] = top, total

    @_kernel
    def tanh_into(x, out):
        """out = tanh(x) for 1-D arrays, as the kernels compute it (tests check its accuracy)."""
        for k in range(x.shape[0]):
            out[k] = _tanh(x[k])

    @_kernel
    def lstm_forward_step(z, r, c_prev, c, tc, h):
        """z (B, 4H): x_t W + b, becomes the gates [i, f, g, o]; r (B, 4H): h_{t-1} U (C order:
        a transposed view works but reads with strides, much slower); c_prev, c, tc, h (B, H): writes c_t,
        tanh(c_t), h_t."""
        B, H = c.shape
        for b in range(B):
            zi, zf, zg, zo = z[b, :H], z[b, H:2 * H], z[b, 2 * H:3 * H], z[b, 3 * H:]
            ri, rf, rg, ro = r[b, :H], r[b, H:2 * H], r[b, 2 * H:3 * H], r[b, 3 * H:]
            cp, cb, tcb, hb = c_prev[b], c[b], tc[b], h[b]
            for j in range(H):
                i = _HALF * _tanh(zi[j] + ri[j]) + _HALF
                f = _HALF * _tanh(zf[j] + rf[j]) + _HALF
                g = _tanh(zg[j] + rg[j])
                o = _HALF * _tanh(zo[j] + ro[j]) + _HALF
                zi[j], zf[j], zg[j], zo[j] = i, f, g, o
                cj = f * cp[j] + i * g
                t = _tanh(cj)
                cb[j], tcb[j], hb[j] = cj, t, o * t

    @_kernel
    def lstm_backward_step(gates, c_prev, tc, dh, dh_next, dc, m, dz):
        """gates (B, 4H) = [i, f, g, o]; c_prev, tc (B, H); dh (B, H): dL/dy_t in, the whole
        dL/dh_t out; dh_next (B, H): dz_{t+1} U^T; dc (B, H): in f_{t+1} dc_{t+1}, out f_t dc_t;
        m (B,): 1 real step, 0 masked; dz (B, 4H) out."""
        B, H = dc.shape
        for b in range(B):
            gi, gf, gg, go = gates[b, :H], gates[b, H:2 * H], gates[b, 2 * H:3 * H], gates[b, 3 * H:]
            di, df, dg, do = dz[b, :H], dz[b, H:2 * H], dz[b, 2 * H:3 * H], dz[b, 3 * H:]
            cp, tcb, dhb, dnb, dcb = c_prev[b], tc[b], dh[b], dh_next[b], dc[b]
            mb = m[b]
            for j in range(H):
                i, f, g, o, t = gi[j], gf[j], gg[j], go[j], tcb[j]
                d = dhb[j] + dnb[j]
                dhb[j] = d
                dcj = dcb[j] + mb * d * o * (_ONE - t * t)
                di[j] = mb * dcj * g * i * (_ONE - i)
                df[j] = mb * dcj * cp[j] * f * (_ONE - f)
                dg[j] = mb * dcj * i * (_ONE - g * g)
                do[j] = mb * d * t * o * (_ONE - o)
                dcb[j] = dcj * (mb * f + _ONE - mb)

    @_kernel
    def gru_forward_step(x, hz, b_hh, h_prev, h):
        """GRU, reset_after: x (B, 3H): x_t W + input biases (z, r columns halved), becomes the
        gates [z, r, hh]; hz (B, 3H): h_{t-1} U (z, r columns halved), its h block gets + b_hh
        (backward needs it); b_hh (H,); h_prev, h (B, H): writes h_t."""
        B, H = h.shape
        for b in range(B):
            xz, xr, xh = x[b, :H], x[b, H:2 * H], x[b, 2 * H:]
            hzz, hzr, hzh = hz[b, :H], hz[b, H:2 * H], hz[b, 2 * H:]
            hp, hb = h_prev[b], h[b]
            for j in range(H):
                z = _HALF * _tanh(xz[j] + hzz[j]) + _HALF
                r = _HALF * _tanh(xr[j] + hzr[j]) + _HALF
                a = hzh[j] + b_hh[j]
                hh = _tanh(xh[j] + r * a)
                hzh[j] = a
                xz[j], xr[j], xh[j] = z, r, hh
                hb[j] = hh + z * (hp[j] - hh)

    @_kernel
    def gru_backward_step(gates, hz, h_prev, dh, dh_next, m, dhz, dxh):
        """GRU, reset_after: gates (B, 3H) = [z, r, hh]; hz (B, 3H) as left by the forward step;
        dh (B, H): dL/dy_t in, the whole dL/dh_t out; dh_next (B, H): in dh_t's share from step
        t+1, out dh_t (m z + 1 - m) (the direct path; the caller adds dhz U^T); m (B,); writes
        dhz (B, 3H), the gradient of h_{t-1} U + b[1], and dxh (B, H), that of x_t W_h + b[0]_h."""
        B, H = h_prev.shape
        for b in range(B):
            gz, gr, gh = gates[b, :H], gates[b, H:2 * H], gates[b, 2 * H:]
            dz, dr, dhh = dhz[b, :H], dhz[b, H:2 * H], dhz[b, 2 * H:]
            hzh, hp, dhb, dnb, dxb = hz[b, 2 * H:], h_prev[b], dh[b], dh_next[b], dxh[b]
            mb = m[b]
            for j in range(H):
                z, r, hh = gz[j], gr[j], gh[j]
                d = dhb[j] + dnb[j]
                dhb[j] = d
                fh = mb * d * (_ONE - z) * (_ONE - hh * hh)     # d(pre-activation of hh)
                dz[j] = mb * d * (hp[j] - hh) * z * (_ONE - z)
                dr[j] = fh * hzh[j] * r * (_ONE - r)
                dhh[j] = fh * r
                dxb[j] = fh
                dnb[j] = d * (mb * z + _ONE - mb)
