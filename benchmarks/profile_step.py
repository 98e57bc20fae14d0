"""Where an rnnlab training step spends its time: the benchmark's step under a profiler.

    nice -n 10 python benchmarks/profile_step.py --config ptb-small [--cell lstm] [--steps 20]
    nice -n 10 python benchmarks/profile_step.py --config char --lines    # needs line_profiler

Runs the benchmark's rnnlab training step (``rnnlab.bench.RnnlabRunner``) under cProfile and
prints the functions by own time; with ``--lines``, under line_profiler over the recurrent
layers, Dense, Embedding, the loss, clipping and SGD, line by line (NumPy operators such as
``@`` and ufuncs with ``out=`` are not function calls, so cProfile charges them to the line's
function; line_profiler shows them). Also prints the step's GEMM-only time
(``rnnlab.bench.gemm_only_time``) for comparison. benchmarks/README.md ("Where the time goes")
quotes its figures.
"""
from __future__ import annotations

import argparse
import cProfile
import inspect
import io
import pstats
import time

from rnnlab import bench


def _functions():
    """The functions a training step runs, for line_profiler."""
    from rnnlab import losses, optim
    from rnnlab.layers import core, recurrent
    from rnnlab.models import lm

    funcs = []
    for cls in [c for _, c in inspect.getmembers(recurrent, inspect.isclass) if c.__module__ == recurrent.__name__]:
        funcs += [f for name, f in vars(cls).items() if inspect.isfunction(f) and not name.startswith("__")]
    funcs += [f for _, f in inspect.getmembers(recurrent, inspect.isfunction) if f.__module__ == recurrent.__name__]
    funcs += [core.Dense.forward, core.Dense.backward, core.Embedding.forward, core.Embedding.backward,
              losses.SoftmaxCrossEntropy.forward, losses.SoftmaxCrossEntropy.backward,
              optim.clip_grad_norm, optim.SGD._update, optim.Optimizer.step,
              lm.LanguageModel.forward, lm.LanguageModel.backward, bench.RnnlabRunner.train_step]
    return funcs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="ptb-small", choices=list(bench.CONFIGS))
    ap.add_argument("--cell", default="lstm", choices=["lstm", "gru"])
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--model", default="lm", choices=["lm", "layers"])
    ap.add_argument("--lines", action="store_true", help="line_profiler instead of cProfile")
    ap.add_argument("--top", type=int, default=25)
    args = ap.parse_args()

    cfg = bench.get_config(args.config)
    runner = bench.RnnlabRunner(cfg, args.cell, bench.make_windows(cfg, 8), model=args.model)
    for _ in range(3):
        runner.train_step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        runner.train_step()
    step_ms = (time.perf_counter() - t0) / args.steps * 1e3
    gemm_ms = bench.gemm_only_time(cfg, args.cell) * 1e3
    print(f"{cfg.name}/{args.cell}: step {step_ms:.1f} ms unprofiled; its GEMMs alone {gemm_ms:.1f} ms "
          f"({step_ms / gemm_ms:.2f}x)")

    if args.lines:
        from line_profiler import LineProfiler

        prof = LineProfiler(*_functions())
        prof.runcall(lambda: [runner.train_step() for _ in range(args.steps)])
        out = io.StringIO()
        prof.print_stats(stream=out, output_unit=1e-3, stripzeros=True)
        print(out.getvalue())
        return
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(args.steps):
        runner.train_step()
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("tottime").print_stats(args.top)


if __name__ == "__main__":
    main()
