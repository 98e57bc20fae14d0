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

``--load`` measures the same rows with a CPU hog beside them (one busy process per available
CPU, started and stopped by the bench: ``rnnlab.bench.load``); rnnlab decides its threads under
that load (``rnnlab.threads``), PyTorch keeps its default. ``--config stream`` measures one step
at batch 1 instead (``rnnlab.bench.stream``: LSTM and GRU, H 128/256/650, one and two layers, the
output layer; against PyTorch's cells and ``nn.LSTM``/``nn.GRU`` and onnxruntime): median and p99
microseconds per step; there ``--steps`` counts rounds of 50 steps per side.

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
    parser.add_argument("--config", default="ptb-small", choices=[*CONFIGS, "all", "stream"],
                        help="benchmark shape (vocab/emb/hidden/layers/batch/bptt), all of them, or stream: one "
                             "step at batch 1 (latency)")
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru", "both"])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per phase (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--load", action="store_true",
                        help="a CPU hog beside the benchmark: one busy process per available CPU (rnnlab decides "
                             "its threads under it, PyTorch keeps its default)")
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
    if args.config == "stream":
        return _stream(args, cells)
    results = []
    for name in configs:
        for cell in cells:
            print(f"bench {name}/{cell} ...", file=sys.stderr, flush=True)
            results.append(run_benchmark(name, cell=cell, steps=args.steps, warmup=args.warmup,
                                         use_torch=not args.no_torch, memory=not args.no_memory,
                                         threads=args.threads, seed=args.seed, model=args.model,
                                         progress=sys.stderr.isatty(), settle=args.settle, device=args.device,
                                         load=args.load))
    print(format_table(results))
    if len(results) == 1:
        return results[0]
    return {"results": results, "blas": results[0]["blas"], "openblas_env": results[0]["openblas_env"]}


def _stream(args, cells) -> dict:
    from .. import threads
    from ..bench.load import measured_under_load
    from ..bench.stream import format_stream_table, run_stream, stream_shapes

    if args.device == "cuda":
        raise ValueError("--config stream runs on the CPU (batch-1 latency); leave out --device cuda")
    results = []
    for cell, hidden, layers in stream_shapes(cells):
        print(f"bench stream {cell} H {hidden} x {layers} ...", file=sys.stderr, flush=True)
        row = dict(cell=cell, hidden=hidden, layers=layers, rounds=args.steps, warmup=args.warmup, seed=args.seed,
                   use_torch=not args.no_torch)
        if args.load:
            results.append(measured_under_load(lambda decision: run_stream(**row, threads=decision.threads),
                                               args.threads))
        else:
            n = threads.current().threads
            results.append(run_stream(**row, threads=n, torch_threads=n))
    print(format_stream_table(results))
    return {"results": results, "blas": results[0]["blas"], "openblas_env": results[0]["openblas_env"]}
