"""The per-step product's orientation: the rule of the shapes against timing both, per bench shape.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/orientation_rule.py [--repeats 15]

A recurrent layer's loop multiplies, at every step, h (B, H) @ U (H, G H) in forward and
dz (B, G H) @ U^T (G H, H) in backward. It may compute either a @ M or the transposed product
(M^T a^T)^T followed by a transposed add or copy into the (B, N) result; the two round
differently, so the layers pick one by a rule of the shapes (``layers/fast/orientation.py``),
never by a timing. For each config of ``rnnlab.bench`` and each cell (LSTM 4 gates, GRU 3) this
script times both forms of both products (float32, the best of ``repeats`` interleaved calls
after a warm-up, transposed add included, one BLAS thread per process as the library runs
them on a loaded machine) and prints the faster one beside the rule's choice, as a Markdown table.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from rnnlab.bench import CONFIGS
from rnnlab.layers.kinds import GATES
from rnnlab.layers.fast.orientation import transposed_products


def best_times(B, K, N, repeats, dtype=np.float32):
    """(plain s, transposed s): the best of ``repeats`` interleaved timings of out += a @ M
    against outT = M^T a^T; out += outT^T, for a (B, K), M (K, N)."""
    rng = np.random.default_rng(0)
    a, M = rng.standard_normal((B, K)).astype(dtype), rng.standard_normal((K, N)).astype(dtype)
    MT, tmp, outT = np.ascontiguousarray(M.T), np.empty((B, N), dtype), np.empty((N, B), dtype)
    out = np.zeros((B, N), dtype)
    plain, transposed = [], []
    for k in range(repeats + 2):
        t0 = time.perf_counter()
        np.matmul(a, M, out=tmp)
        out += tmp
        t1 = time.perf_counter()
        np.matmul(MT, a.T, out=outT)
        out += outT.T
        t2 = time.perf_counter()
        if k >= 2:   # the first two calls of each warm up
            plain.append(t1 - t0)
            transposed.append(t2 - t1)
    return min(plain), min(transposed)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    print("| config | cell | product | plain us | transposed us | faster | rule | agree |")
    print("|---|---|---|---:|---:|---|---|---|")
    agree = total = 0
    for name, cfg in CONFIGS.items():
        for cell in ("lstm", "gru"):
            B, H, GH = cfg.batch, cfg.hidden, GATES[cell] * cfg.hidden
            for label, (K, N) in (("forward h U", (H, GH)), ("backward dz U^T", (GH, H))):
                plain, transposed = best_times(B, K, N, args.repeats)
                faster = "transposed" if transposed < plain else "plain"
                rule = "transposed" if transposed_products(B, K, N) else "plain"
                agree += faster == rule
                total += 1
                print(f"| {name} | {cell} | {label} {B}x{K} @ {K}x{N} | {plain * 1e6:.0f} | "
                      f"{transposed * 1e6:.0f} | {faster} | {rule} | {'yes' if faster == rule else 'no'} |")
    print(f"\nthe rule picks the faster form for {agree} of {total} products")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
