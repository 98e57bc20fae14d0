"""rnnlab against PyTorch on the same language model, in the same process, on the same data.

    from rnnlab.bench import run_benchmark, format_table
    result = run_benchmark("ptb-small", cell="lstm", steps=20, warmup=3)
    print(format_table([result]))

The model is the word-level language model of Zaremba et al. (2014) without dropout:

    ids (B, T) -> Embedding (V, E) -> N stacked LSTM/GRU (H units, carried state)
               -> Dense (H, V) -> softmax cross-entropy -> backward -> clip (5.0) -> SGD (lr 1)

PyTorch runs the same shape (``nn.Embedding``, ``nn.LSTM``/``nn.GRU`` with ``batch_first``,
``nn.Linear``, ``cross_entropy``, ``clip_grad_norm_``, ``SGD``, state carried and detached),
both initialised from U(-0.1, 0.1), on the same random token windows. The two are timed in
turns, one step each, alternating which goes first, so that a change in machine load hits
both alike. Throughput is tokens (B * T) per second of the median step time. Before every
timed step the process sleeps ``settle`` seconds (``SETTLE_S`` = 0.2 by default), untimed, so
that neither side's step shares the cores with the other library's still-spinning threads
(``measure``). Results without ``settle_s`` were timed back to back.

The parts:

- ``configs``: ``BenchConfig``, ``CONFIGS``, the random windows and the FLOP count;
- ``rnnlab_side`` / ``torch_side``: each library's model and its training / inference step;
- ``measure``: the interleaved step timer, GEMM peak and GEMM-only time, machine load, BLAS,
  versions; ``memory``: peak RSS of each side in a fresh subprocess;
- ``run``: ``run_benchmark``, which puts them together; ``report``: ``format_table``.

What a result holds (``run_benchmark`` returns a dict; the keys the CLI promises are
``config``, ``rnnlab_train_tok_s``, ``torch_train_tok_s``, ``ratio_train``,
``rnnlab_infer_tok_s``, ``torch_infer_tok_s``, ``ratio_infer``, ``blas``):

- *train*: one full training step on a (B, T) window; *infer*: forward and loss value,
  no gradient (a perplexity evaluation), state carried as well.
- ``ratio_*`` = rnnlab tokens/s / PyTorch tokens/s (> 1: rnnlab is faster).
- ``train_flops`` / ``infer_flops``: the matrix-multiply FLOPs of a step (``configs``).
- ``gemm_peak_gflops``: the measured GEMM peak; ``rnnlab_train_gflops`` / that = the fraction
  of peak achieved. ``gemm_only_ms``: the step's multiplies alone;
  ``rnnlab_step_over_gemm`` = rnnlab step time / that (1.0 = everything but the multiplies
  is free). Both are NumPy figures, skipped on the GPU.
- Memory (``memory=True``, CPU only): ``*_peak_rss_mb`` and ``*_rss_delta_mb`` (``memory``),
  again at twice the bptt to show how memory grows with the window.
- ``foreign_cpu_share``: the share of all CPUs that other processes used while the steps were
  timed; above 0.05 a note marks the result as noisy. ``*_spread``: interquartile range /
  median of each side's step times.
- ``backend``, ``device``, ``torch_device``: where each side ran (``device="cuda"``: rnnlab on
  CuPy, PyTorch on CUDA, i.e. cuDNN's LSTM/GRU).
- ``fused_kernels``: whether rnnlab's layers ran the fused numba step kernels
  (``layers/fast/fused.py``), with ``versions["numba"]``; ``compiled_loops``: whether they ran
  their whole time loops as compiled calls (``layers/fast/compiled.py``), with ``versions["scipy"]``.
- ``blas``: NumPy's BLAS as threadpoolctl reports it (name, version, kernel, threads), and
  ``openblas_env`` whether ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` were set (they force
  a kernel when OpenBLAS loads; benchmark with both unset:
  ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE rnnlab bench --config all``).

- ``thread_decision``: rnnlab's thread decision in force (``rnnlab.threads``: the thread count,
  its source, the CPUs and load it saw); ``torch_threads``: PyTorch's thread count.
- ``load`` (``load=True``, ``rnnlab bench --load``): the CPU hog beside the rows (``load``: one
  busy process per available CPU) and the decision rnnlab made under it.

``stream`` (``rnnlab bench --config stream``) times one step at batch 1 instead: see its module.

PyTorch gets ``torch.set_num_threads`` equal to NumPy's BLAS thread count (the policy's
decision), except under ``load``, where it keeps its default. Without PyTorch
installed the rnnlab figures are still measured, the torch ones are None, and ``notes`` says so.
Recorded figures live in benchmarks/README.md, never here.
"""
from __future__ import annotations

from .configs import CELLS, CLIP, CONFIGS, INIT, LR, SETTLE_S, BenchConfig, get_config, make_windows, matmul_flops
from .measure import (OPENBLAS_VARS, blas_info, compiled_loops, fused_kernels, gemm_only_time, interleaved,
                      machine_info, measure_gemm_peak, openblas_env, versions)
from .memory import measure_memory
from .report import format_table
from .rnnlab_side import RnnlabRunner, build_rnnlab_model
from .run import DEVICES, run_benchmark
from .torch_side import TorchRunner, build_torch_model

__all__ = ["BenchConfig", "CONFIGS", "CELLS", "CLIP", "DEVICES", "INIT", "LR", "OPENBLAS_VARS", "SETTLE_S",
           "RnnlabRunner", "TorchRunner", "blas_info", "build_rnnlab_model", "build_torch_model", "compiled_loops",
           "format_table", "fused_kernels", "gemm_only_time", "get_config", "interleaved", "machine_info", "make_windows",
           "matmul_flops", "measure_gemm_peak", "measure_memory", "openblas_env", "run_benchmark", "versions"]
