"""``run_benchmark``: time rnnlab and PyTorch on one config, interleaved, and collect the figures."""
from __future__ import annotations

import os
import sys
from dataclasses import asdict

from .. import backend
from .. import threads as thread_policy
from . import torch_side
from .configs import SETTLE_S, BenchConfig, check_cell, get_config, make_windows, matmul_flops
from .load import measured_under_load
from .measure import (blas_info, blas_threads, compiled_loops, cpu_snapshot, foreign_share, fused_kernels, gemm_only_time,
                      interleaved, machine_info, measure_gemm_peak, openblas_env, summarize, versions)
from .memory import METHOD as MEMORY_METHOD
from .memory import measure_memory
from .rnnlab_side import RnnlabRunner

DEVICES = ("auto", "cpu", "cuda")


def run_benchmark(config_name="ptb-small", cell: str = "lstm", steps: int = 20, warmup: int = 3,
                  infer: bool = True, use_torch: bool = True, memory: bool = False, gemm: bool = True,
                  threads: int | None = None, seed: int = 0, model: str = "lm", progress: bool = False,
                  settle: float = SETTLE_S, device: str = "auto", load: bool = False) -> dict:
    """Time rnnlab and PyTorch on one config (interleaved, same data); return the figures.

    ``config_name``: a name in ``CONFIGS``, a ``BenchConfig`` or a dict of its fields.
    ``steps`` timed steps after ``warmup`` untimed ones, for training and again for inference.
    ``use_torch=False`` (or torch not installed) measures rnnlab alone. ``memory=True`` adds
    the peak-RSS subprocess measurements; ``gemm=False`` skips the GEMM peak and GEMM-only
    timings. ``threads``: BLAS and torch threads (default: NumPy's BLAS thread count).
    ``model``: ``"lm"`` (``LanguageModel``) or ``"layers"`` (a ``Sequential`` of public layers).
    ``settle``: seconds of sleep before each timed step (0: back to back).
    ``device``: ``"auto"`` follows rnnlab's backend (CuPy: both sides on the GPU, PyTorch on
    CUDA when it has it); ``"cuda"`` switches rnnlab to the CuPy backend for this call (an
    error naming the ``gpu`` extra without CuPy); ``"cpu"`` to NumPy. The backend in force
    before the call is restored after it.
    ``load``: measure with a CPU hog beside (``bench.load.cpu_hog``: one busy process per available
    CPU): rnnlab decides its threads under that load (``rnnlab.threads``; ``threads`` overrides),
    PyTorch keeps its default thread count; the decision in force before is restored after.
    """
    cfg = get_config(config_name)
    check_cell(cell)
    if steps < 1 or warmup < 0:
        raise ValueError(f"run_benchmark: need steps >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    if not settle >= 0:
        raise ValueError(f"run_benchmark: settle must be >= 0 seconds, got {settle}")
    if device not in DEVICES:
        raise ValueError(f"run_benchmark: device must be one of {list(DEVICES)}, got {device!r}")
    previous_backend = backend.backend_name()
    wanted = {"cuda": "cupy", "cpu": "numpy"}.get(device, previous_backend)
    if wanted != previous_backend:
        backend.set_backend(wanted)
    try:
        if load:
            return measured_under_load(lambda decision: _with_threads(
                cfg, cell, steps, warmup, infer, use_torch, memory, gemm, None, seed, model, progress, settle,
                torch_default_threads=True), threads)
        return _with_threads(cfg, cell, steps, warmup, infer, use_torch, memory, gemm, threads, seed, model,
                             progress, settle)
    finally:
        if backend.backend_name() != previous_backend:
            backend.set_backend(previous_backend)


def _with_threads(cfg, cell, steps, warmup, infer, use_torch, memory, gemm, threads, seed, model, progress,
                  settle, torch_default_threads=False):
    notes = []
    torch = torch_side.import_torch() if use_torch else None
    if use_torch and torch is None:
        notes.append("PyTorch is not installed: rnnlab-only figures (pip install 'rnnlab[bench]')")
    elif not use_torch:
        notes.append("PyTorch skipped on request: rnnlab-only figures")

    limiter = None
    if threads is not None:
        try:
            from threadpoolctl import threadpool_limits
            limiter = threadpool_limits(limits=int(threads), user_api="blas")
        except ImportError:
            notes.append("threadpoolctl not installed: the BLAS thread count was not changed")
    try:
        n_threads = int(threads) if threads is not None else blas_threads()
        old_torch_threads = None
        if torch is not None and not torch_default_threads:
            old_torch_threads = torch.get_num_threads()
            torch.set_num_threads(n_threads)
        try:
            return _run(cfg, cell, steps, warmup, infer, torch, memory, gemm, n_threads, seed, model,
                        progress, notes, settle)
        finally:
            if old_torch_threads is not None:
                torch.set_num_threads(old_torch_threads)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()


def _run(cfg, cell, steps, warmup, infer, torch, memory, gemm, n_threads, seed, model, progress, notes, settle):
    env = openblas_env()
    if any(env.values()):
        set_vars = ", ".join(f"{k}={v}" for k, v in env.items() if v)
        notes.append(f"{set_vars} set: OpenBLAS runs a forced kernel; benchmark with "
                     f"`env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE rnnlab bench ...`")
    else:
        notes.append("OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset: OpenBLAS picked its kernel for this CPU")
    tokens = cfg.batch * cfg.bptt
    windows = make_windows(cfg, 8, seed)
    load_before = os.getloadavg() if hasattr(os, "getloadavg") else None

    device = "cpu"
    if backend.backend_name() == "cupy":
        device = "cuda"
        if gemm:
            gemm = False
            notes.append("CuPy backend: the GEMM peak and GEMM-only figures are NumPy (CPU) ones, skipped")
        if memory:
            memory = False
            notes.append("CuPy backend: memory is measured as host RSS, which misses the GPU's, skipped")
    torch_device = None
    if torch is not None:
        torch_device = "cuda" if device == "cuda" and torch.cuda.is_available() else "cpu"
        if device == "cuda" and torch_device == "cpu":
            notes.append("CuPy backend but PyTorch has no CUDA: PyTorch runs on the CPU")
    sides = {"rnnlab": RnnlabRunner(cfg, cell, windows, seed, model)}
    if torch is not None:
        sides["torch"] = torch_side.TorchRunner(torch, cfg, cell, windows, seed, device=torch_device)

    cpu_before = cpu_snapshot()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=(warmup + steps) * (2 if infer else 1), desc=f"bench {cfg.name}/{cell}",
                   file=sys.stderr, leave=False)
    train_t = interleaved({k: s.train_step for k, s in sides.items()}, warmup, steps, bar, settle)
    train_loss = {k: s.last_loss for k, s in sides.items()}
    infer_t = None
    if infer:
        for s in sides.values():
            s.reset()
        infer_t = interleaved({k: s.infer_step for k, s in sides.items()}, warmup, steps, bar, settle)
    if bar is not None:
        bar.close()
    foreign = foreign_share(cpu_before, cpu_snapshot())

    train_flops, infer_flops = matmul_flops(cfg, cell, True), matmul_flops(cfg, cell, False)
    res = {"config": cfg.name, "cell": cell, **{k: v for k, v in asdict(cfg).items() if k != "name"},
           "steps": steps, "warmup": warmup, "settle_s": settle, "tokens_per_step": tokens, "threads": n_threads,
           "rnnlab_model": model, "backend": backend.backend_name(), "device": device,
           "torch_device": torch_device, "dtype": backend.floatx(), "fused_kernels": fused_kernels(cell),
           "compiled_loops": compiled_loops(cell)}
    for phase, times in (("train", train_t), ("infer", infer_t)):
        for side in ("rnnlab", "torch"):
            s = summarize(times[side], tokens) if times is not None and side in times else None
            res[f"{side}_{phase}_tok_s"] = s["tok_s"] if s else None
            res[f"{side}_{phase}_step_ms"] = s["median_s"] * 1e3 if s else None
            res[f"{side}_{phase}_spread"] = s["spread"] if s else None
        r, t = res[f"rnnlab_{phase}_tok_s"], res[f"torch_{phase}_tok_s"]
        res[f"ratio_{phase}"] = r / t if r and t else None
    res["rnnlab_train_loss"] = train_loss.get("rnnlab")
    res["torch_train_loss"] = train_loss.get("torch")
    for side in ("rnnlab", "torch"):
        ms = res[f"{side}_train_step_ms"]
        res[f"{side}_train_gflops"] = train_flops / (ms / 1e3) / 1e9 if ms else None
    res["train_flops"] = train_flops
    res["infer_flops"] = infer_flops

    if gemm:
        peak = measure_gemm_peak()
        gemm_s = gemm_only_time(cfg, cell, train=True)
        res["gemm_peak_gflops"] = peak
        res["gemm_peak_shape"] = "float32 (1024,1024)@(1024,1024), best of 5"
        res["gemm_bound_at_peak_ms"] = train_flops / (peak * 1e9) * 1e3
        res["gemm_only_ms"] = gemm_s * 1e3
        res["rnnlab_peak_fraction"] = res["rnnlab_train_gflops"] / peak
        res["torch_peak_fraction"] = res["torch_train_gflops"] / peak if res["torch_train_gflops"] else None
        res["rnnlab_step_over_gemm"] = res["rnnlab_train_step_ms"] / res["gemm_only_ms"]

    if memory:
        res["memory_method"] = MEMORY_METHOD
        double = BenchConfig(cfg.name + "-2xbptt", cfg.vocab, cfg.emb, cfg.hidden, cfg.layers, cfg.batch,
                             2 * cfg.bptt)
        for side in (["rnnlab", "torch"] if torch is not None else ["rnnlab"]):
            one = measure_memory(cfg, cell, side, seed, model, n_threads)
            two = measure_memory(double, cell, side, seed, model, n_threads)
            res[f"{side}_peak_rss_mb"] = one["peak_mb"]
            res[f"{side}_rss_delta_mb"] = one["delta_mb"]
            res[f"{side}_rss_delta_mb_2x_bptt"] = two["delta_mb"]
        if torch is not None and res["torch_rss_delta_mb"] > 0:
            res["rss_delta_ratio"] = res["rnnlab_rss_delta_mb"] / res["torch_rss_delta_mb"]

    load_after = os.getloadavg() if hasattr(os, "getloadavg") else None
    res["loadavg_before_after"] = [load_before[0], load_after[0]] if load_before else None
    res["foreign_cpu_share"] = foreign
    if foreign is not None and foreign > 0.05:
        notes.append(f"other processes used {100 * foreign:.0f}% of the CPUs while {cfg.name}/{cell} was "
                     f"timed: its figures are noisy (run again on a quiet machine)")
    res["thread_decision"] = thread_policy.current().as_dict()
    res["torch_threads"] = torch.get_num_threads() if torch is not None else None
    res["blas"] = blas_info()
    res["openblas_env"] = env
    res["machine"] = machine_info()
    res["versions"] = versions(torch)
    res["notes"] = notes
    return res
