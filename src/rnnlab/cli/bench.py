"""``rnnlab bench --config NAME|all [--cell lstm|gru|both] [--steps N] [--json]``.

Times rnnlab and PyTorch (when installed) in the same process, interleaved, on the same
language model and random data (see ``rnnlab.bench``), and prints a table: tokens/s for a
training step and for inference, the ratio rnnlab/PyTorch, matmul FLOPs and GFLOP/s against a
measured GEMM peak, peak RSS of each (fresh subprocesses), the BLAS and its kernel.

On a machine where ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` force a kernel, benchmark with
both unset for that command only::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE rnnlab bench --config all

With ``--json`` the last line of stdout is one JSON object: the result of the config (keys
``config``, ``rnnlab_train_tok_s``, ``torch_train_tok_s``, ``ratio_train``,
``rnnlab_infer_tok_s``, ``torch_infer_tok_s``, ``ratio_infer``, ``blas``, ...), or for several
configs/cells ``{"results": [...], "blas": ...}``.

``--device cuda`` runs rnnlab on the CuPy backend and PyTorch on CUDA (cuDNN's LSTM/GRU); the
NumPy GEMM figures and the host-memory subprocesses are skipped there. Without CuPy it is a
one-line error naming the ``gpu`` extra.
"""
from __future__ import annotations

import sys


def register(ctx) -> None:
    from ..bench import CONFIGS, DEVICES, SETTLE_S

    parser = ctx.commands.add_parser(
        "bench", parents=[ctx.common], help="benchmark rnnlab against PyTorch (tokens/s, FLOPs, memory)",
        description="Train and evaluate the same language model in rnnlab and PyTorch, interleaved in "
                    "one process on the same random data, and print tokens/s, ratios, GFLOP/s and memory.")
    parser.add_argument("--config", default="ptb-small", choices=[*CONFIGS, "all"],
                        help="benchmark shape (vocab/emb/hidden/layers/batch/bptt), or all of them")
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "both"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per phase (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS and torch threads (default: NumPy's BLAS thread count)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-RSS subprocesses")
    parser.add_argument("--no-torch", action="store_true", help="rnnlab alone")
    parser.add_argument("--model", default="lm", choices=["lm", "layers"],
                        help="rnnlab side: models.LanguageModel (lm) or public layers stacked by hand")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--settle", type=float, default=SETTLE_S, metavar="SECONDS",
                        help=f"sleep before each timed step, so that the other library's idle threads stop "
                             f"spinning (default {SETTLE_S}; 0 = back to back)")
    parser.add_argument("--device", default="auto", choices=DEVICES,
                        help="auto: follow rnnlab's backend (RNNLAB_BACKEND); cuda: rnnlab on CuPy and PyTorch "
                             "on CUDA (cuDNN), needs the gpu extra; cpu: both on the CPU (default auto)")
    parser.set_defaults(func=run)


def run(args) -> dict:
    from ..bench import CONFIGS, format_table, run_benchmark

    configs = list(CONFIGS) if args.config == "all" else [args.config]
    cells = ["lstm", "gru"] if args.cell == "both" else [args.cell]
    if args.steps < 1:
        raise ValueError(f"--steps must be >= 1, got {args.steps}")
    results = []
    for name in configs:
        for cell in cells:
            print(f"bench {name}/{cell} ...", file=sys.stderr, flush=True)
            results.append(run_benchmark(name, cell=cell, steps=args.steps, warmup=args.warmup,
                                         use_torch=not args.no_torch, memory=not args.no_memory,
                                         threads=args.threads, seed=args.seed, model=args.model,
                                         progress=sys.stderr.isatty(), settle=args.settle, device=args.device))
    print(format_table(results))
    if len(results) == 1:
        return results[0]
    return {"results": results, "blas": results[0]["blas"], "openblas_env": results[0]["openblas_env"]}
