"""Fit the float32 tanh of layers/fast/fused.py:  tanh(x) ~ x P(x^2) / Q(x^2) on |x| <= 9.

    python tools/fit_tanh.py

Beyond 9, tanh(x) rounds to +-1 in float32, so the kernels clamp there. With u = x^2 / 81 in
[0, 1], tanh(x) / x is fitted by a rational function P(u) / Q(u) (P of degree 6, Q of degree 3,
Q(0) = 1) in the Chebyshev basis: each round solves the linearised least-squares problem
P - f Q = 0 weighted by 1 / (f Q_previous) (relative error), and Lawson's rule raises the
weights where the error is largest, so the fit tends to the minimax one. The coefficients are
then turned into powers of x^2, rounded to float32, and the rounded function is checked in
float32 against float64's tanh. Prints the coefficients that fused.py holds.
"""
from __future__ import annotations

import numpy as np
from numpy.polynomial import chebyshev, polynomial

LIMIT = 9.0
N_P, N_Q = 7, 4         # coefficients of P and Q


def fit(rounds: int = 200):
    u = (1 - np.cos(np.linspace(0, np.pi, 40001))) / 2
    u = np.unique(np.concatenate([u, np.geomspace(1e-12, 1e-2, 3000)]))
    x = LIMIT * np.sqrt(u)
    f = np.where(x > 0, np.tanh(x) / np.where(x > 0, x, 1), 1.0)
    t = 2 * u - 1
    Tp, Tq = chebyshev.chebvander(t, N_P - 1), chebyshev.chebvander(t, N_Q - 1)
    weights, q_prev, best = np.ones_like(u), np.ones_like(u), None
    for _ in range(rounds):
        A = np.concatenate([Tp, -f[:, None] * Tq[:, 1:]], 1)   # the T0 coefficient of Q is 1
        w = np.sqrt(weights) / (f * np.abs(q_prev))
        sol, *_ = np.linalg.lstsq(A * w[:, None], f * Tq[:, 0] * w, rcond=None)
        p_cheb, q_cheb = sol[:N_P], np.concatenate([[1.0], sol[N_P:]])
        P, Q = chebyshev.chebval(t, p_cheb), chebyshev.chebval(t, q_cheb)
        err = np.abs(P / Q / f - 1)
        if best is None or err.max() < best[0]:
            best = (err.max(), p_cheb, q_cheb)
        weights = weights * np.sqrt(err)
        weights /= weights.sum()
        q_prev = Q
    return best


def in_powers_of_x2(cheb):
    """Chebyshev coefficients in t = 2u - 1 -> coefficients of (x^2)^k, u = x^2 / LIMIT^2."""
    in_t = chebyshev.cheb2poly(cheb)
    in_u = np.zeros(len(in_t))
    for k, c in enumerate(in_t):
        in_u[:k + 1] += c * polynomial.polypow([-1.0, 2.0], k)[:k + 1]
    return in_u / LIMIT ** (2 * np.arange(len(in_u)))


def float32_ulps(p, q):
    x = np.linspace(-LIMIT - 1, LIMIT + 1, 2_000_001).astype(np.float32)
    x = np.concatenate([x, np.float32(1e-3) * x])
    xc = np.clip(x, np.float32(-LIMIT), np.float32(LIMIT))
    s = xc * xc
    P, Q = np.zeros_like(s), np.zeros_like(s)
    for c in p[::-1]:
        P = P * s + c
    for c in q[::-1]:
        Q = Q * s + c
    exact = np.tanh(x.astype(np.float64))
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs((xc * P / Q).astype(np.float64) - exact) / ulp


def main():
    rel, p_cheb, q_cheb = fit()
    p, q = in_powers_of_x2(p_cheb), in_powers_of_x2(q_cheb)
    p, q = p / q[0], q / q[0]
    p32, q32 = p.astype(np.float32), q.astype(np.float32)
    ulps = float32_ulps(p32, q32)
    print(f"relative error in float64: {rel:.2e}; float32: max {ulps.max():.2f} ulps, mean {ulps.mean():.2f}")
    print("P =", [float(v) for v in p32])
    print("Q =", [float(v) for v in q32])


if __name__ == "__main__":
    main()
