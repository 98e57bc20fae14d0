"""One recurrent layer at each benchmark shape: its NumPy loops against its fused numba kernels.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/step_kernels.py [--repeats 7]

For each config of ``rnnlab.bench`` (the first layer: input width = emb) and each cell (LSTM,
GRU), times a forward call and a forward + backward call of the layer on the same random data,
the two paths interleaved (``FastLoop.FUSED`` False / True), and prints the medians in
microseconds per time step and the speed-up. rnnlab against itself, so no PyTorch column: the
full-model comparison with PyTorch is ``rnnlab bench``. Needs numba.
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from rnnlab.bench import CONFIGS
from rnnlab.layers import GRU, LSTM
from rnnlab.layers.fast import FastLoop, fused


def time_layer(layer, x, dy, repeats):
    """Median seconds of forward, and of forward + backward, per path: {(path, phase): s}."""
    out = {}
    for path in ("numpy", "fused") * (repeats + 1):
        FastLoop.FUSED = path == "fused"
        t0 = time.perf_counter()
        layer.forward(x)
        t1 = time.perf_counter()
        layer.backward(dy)
        t2 = time.perf_counter()
        out.setdefault((path, "forward"), []).append(t1 - t0)
        out.setdefault((path, "train"), []).append(t2 - t0)
    FastLoop.FUSED = None
    return {k: statistics.median(v[1:]) for k, v in out.items()}   # the first call of each path warms up


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    if fused.numba is None:
        raise SystemExit("numba is not installed: pip install 'rnnlab[fast]'")
    rng = np.random.default_rng(0)
    print("| config | cell | B x T, D -> H | forward us/step NumPy | fused | speed-up | "
          "forward + backward us/step NumPy | fused | speed-up |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for name, cfg in CONFIGS.items():
        x = rng.uniform(-1, 1, (cfg.batch, cfg.bptt, cfg.emb)).astype(np.float32)
        dy = rng.standard_normal((cfg.batch, cfg.bptt, cfg.hidden)).astype(np.float32)
        for cell, cls in (("lstm", LSTM), ("gru", GRU)):
            layer = cls(cfg.hidden, return_sequences=True, seed=0)
            t = time_layer(layer, x, dy, args.repeats)
            per_step = {k: v / cfg.bptt * 1e6 for k, v in t.items()}
            cells = []
            for phase in ("forward", "train"):
                a, b = per_step[("numpy", phase)], per_step[("fused", phase)]
                cells += [f"{a:.1f}", f"{b:.1f}", f"{a / b:.2f}"]
            print(f"| {name} | {cell} | {cfg.batch} x {cfg.bptt}, {cfg.emb} -> {cfg.hidden} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
