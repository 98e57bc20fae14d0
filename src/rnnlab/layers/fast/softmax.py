"""The fast form of SoftmaxCrossEntropy's exponentials (``losses.py`` holds the plain one).

``softmax_exp(z, e, s, z_t, rows, t)`` writes e = exp(z - shift), s = its row sums and
z_t = z[n, t_n] - shift for logits z (N, V), as the plain form does with each row's max as the
shift; it is registered in ``layers/hook.py`` as "softmax_exp" and returns None where the
package is off or the backend is not NumPy (the loss then runs its plain form).

Written for a 10,000-word vocabulary. The NumPy form (``blocked_exp``) works a block of rows at
a time so that each block stays in cache, and chooses the shift per block from the block's max
and min (two reductions over the whole block, cheap): none when all its logits lie in
(-SHIFT_RANGE, SHIFT_RANGE) (exp(z) can neither overflow nor vanish: one pass fewer, 4.5 ->
3.9 ms at 700 x 10000); the block's max when they lie within SHIFT_RANGE of each other; else
each row's own max. A reduction per row is the bulk of the work for short rows (characters,
V = 50: 1.6 ms of it, against 0.1 ms for the block's max and min), and log-sum-exp loses at
most about SHIFT_RANGE x float epsilon. Row sums are a GEMV, e @ 1 (short rows: 0.6 -> 0.08 ms).
float32 with numba runs ``fused_exp`` instead: one kernel (``fused.exp_rows``) takes each
row's max, exp and sum in one pass, on two threads for large batches (rows are independent:
the same bits with one thread or two), with a vectorized float32 exp (NumPy's is vectorized
only on AVX-512 CPUs). The tests hold all forms equal.
"""
from __future__ import annotations

import numpy as np

from ... import backend
from . import compiled, fused
from .base import ones_vector

ROW_BLOCK = 1 << 17            # logits per block of rows in the NumPy form
SHIFT_RANGE = 30.0             # no shift, or one per block, while the logits stay this close to 0 / to each other
FUSED_MIN_VALUES = 1 << 16     # each thread of the fused kernel gets at least this many logits


def softmax_exp(z, e, s, z_t, rows, t):
    """The fast form (module docstring), or None where it does not apply."""
    from . import enabled

    if not enabled() or backend.backend_name() != "numpy":
        return None
    if uses_fused(z):
        fused_exp(np.ascontiguousarray(z), e, s, z_t, rows, t)
    else:
        blocked_exp(z, e, s, z_t, rows, t)
    return True


def uses_fused(z) -> bool:
    """float32 with numba: ``fused.exp_rows`` does each row's max, exp and sum in one pass."""
    return z.dtype == np.float32 and fused.available()


def fused_exp(z, e, s, z_t, rows, t):
    """One kernel call per half of the rows, two threads for large batches."""
    N, V = z.shape
    shift = np.empty(N, dtype=z.dtype)
    compiled.run_row_halves(lambda r0, r1: fused.exp_rows(z[r0:r1], e[r0:r1], shift[r0:r1], s[r0:r1]),
                            N, max(1, FUSED_MIN_VALUES // V))
    np.subtract(z[rows, t], shift, out=z_t)


def blocked_exp(z, e, s, z_t, rows, t):
    """The NumPy form, a block of rows at a time, the shift chosen per block."""
    xp = backend.xp
    N, V = z.shape
    block = max(1, ROW_BLOCK // V)
    ones = ones_vector(V, z.dtype)
    for r0 in range(0, N, block):
        r1 = min(N, r0 + block)
        zb, eb = z[r0:r1], e[r0:r1]
        top, bottom, R = zb.max(), zb.min(), SHIFT_RANGE  # NaN, inf: every test below is False
        if bool(-R < bottom) and bool(top < R):
            z_t[r0:r1] = zb[rows[:r1 - r0], t[r0:r1]]          # no shift
            xp.exp(zb, out=eb)
        else:
            if bool(top - bottom < R):
                xp.subtract(zb, top, out=eb)                    # one shift for the block
            else:
                xp.subtract(zb, zb.max(axis=1, keepdims=True), out=eb)
            z_t[r0:r1] = eb[rows[:r1 - r0], t[r0:r1]]          # z[t] - shift, before exp
            xp.exp(eb, out=eb)
        xp.matmul(eb, ones, out=s[r0:r1])
