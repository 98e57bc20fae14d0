"""Every benchmark config, LSTM and GRU, rnnlab against PyTorch: prints the table.

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_lm.py [--steps 20] [--json out.json]

The same as ``rnnlab bench --config all --cell both``; see ``rnnlab.bench`` for what is measured
and benchmarks/README.md for recorded tables. Run it on a quiet machine: the two sides are
interleaved so both see the same load, but a busy core still skews small-GEMM timings.
"""
from __future__ import annotations

import argparse
import json
import sys

from rnnlab.bench import CONFIGS, SETTLE_S, format_table, run_benchmark


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated config names")
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--model", default="lm", choices=["lm", "layers"])
    ap.add_argument("--settle", type=float, default=SETTLE_S, help="seconds of sleep before each timed step")
    ap.add_argument("--json", metavar="PATH", help="also write all results to this JSON file")
    args = ap.parse_args(argv)
    results = []
    for name in args.configs.split(","):
        for cell in args.cells.split(","):
            print(f"bench {name}/{cell} ...", file=sys.stderr, flush=True)
            results.append(run_benchmark(name, cell=cell, steps=args.steps, warmup=args.warmup,
                                         memory=not args.no_memory, model=args.model, progress=True,
                                         settle=args.settle))
            print(format_table(results[-1:]).splitlines()[2], file=sys.stderr, flush=True)
    print(format_table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
