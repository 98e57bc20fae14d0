"""Clocks and context: the step timer, the GEMM figures, the machine's load, BLAS and versions.

- ``interleaved``: per-step seconds of each side, in turns (the order alternating every step),
  each timed step after ``settle`` seconds of untimed sleep. Both libraries leave worker
  threads spinning after they return (OpenBLAS's for about 0.1 s, its THREAD_TIMEOUT; PyTorch's
  OpenMP threads too), so a step started at once after the other library's shares the cores
  with those spinning threads, which no user running one library sees.
- ``measure_gemm_peak``: NumPy float32 GEMM rate on a square n=1024 product (best of 5), the
  "measured GEMM peak".
- ``gemm_only_time``: the step's own matrix multiplies (``configs.gemm_shapes``, the T small
  recurrent ones one by one) timed alone with NumPy: the GEMM-bound time of a training step
  with this BLAS.
- ``cpu_snapshot`` / ``foreign_share``: the share of all CPUs that *other* processes used
  while the steps were timed (0 = quiet machine).
- ``blas_info``, ``openblas_env``, ``machine_info``, ``versions``, ``fused_kernels``,
  ``compiled_loops``: what the
  result records about where it was measured.
"""
from __future__ import annotations

import os
import platform
import statistics
import time

import numpy as np

from .. import backend
from ..layers.kinds import layer_class
from .configs import check_cell, gemm_shapes, get_config

OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


# ---- timing ------------------------------------------------------------------------------


def interleaved(fns: dict, warmup: int, steps: int, progress=None, settle: float = 0.0) -> dict:
    """Per-step seconds of each callable, run in turns (order alternating every step), each
    timed step after ``settle`` seconds of sleep (see the module docstring)."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
        if progress is not None:
            progress.update(1)
    times = {name: [] for name in names}
    for i in range(steps):
        for name in (names if i % 2 == 0 else names[::-1]):
            if settle > 0:
                time.sleep(settle)
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
        if progress is not None:
            progress.update(1)
    return times


def summarize(times: list, tokens: int) -> dict:
    """Median step seconds, tokens/s at the median, and spread = interquartile range / median."""
    med = statistics.median(times)
    q = np.percentile(times, [25, 75]) if len(times) > 1 else (med, med)
    return {"median_s": med, "min_s": min(times), "tok_s": tokens / med,
            "spread": float((q[1] - q[0]) / med) if med > 0 else 0.0}


# ---- GEMM figures --------------------------------------------------------------------------


def gemm_only_time(config, cell: str = "lstm", train: bool = True, repeats: int = 3) -> float:
    """Seconds the step's matrix multiplies take alone in NumPy float32 (median of repeats)."""
    cfg = get_config(config)
    rng = np.random.default_rng(0)
    work = []
    for m, k, n, rep, trans_a in gemm_shapes(cfg, check_cell(cell), train):
        a = rng.standard_normal((k, m) if trans_a else (m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        work.append((a.T if trans_a else a, b, np.empty((m, n), dtype=np.float32), rep))

    def once():
        for a, b, out, rep in work:
            for _ in range(rep):
                np.matmul(a, b, out=out)

    once()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        once()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


_PEAK_CACHE: dict = {}


def measure_gemm_peak(n: int = 1024, repeats: int = 5) -> float:
    """GFLOP/s of a NumPy float32 (n, n) @ (n, n) product, best of ``repeats`` (cached)."""
    key = (n, blas_threads())
    if key not in _PEAK_CACHE:
        rng = np.random.default_rng(0)
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        out = np.empty((n, n), dtype=np.float32)
        np.matmul(a, b, out=out)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            np.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - t0)
        _PEAK_CACHE[key] = 2.0 * n ** 3 / best / 1e9
    return _PEAK_CACHE[key]


# ---- machine load ----------------------------------------------------------------------------


def cpu_snapshot():
    """(busy seconds of the whole machine, CPU seconds of this process, wall time), or None.

    From /proc/stat (Linux): busy = user + nice + system + irq + softirq + steal. The busy
    time the machine spent beyond this process's own, per core and second of wall time, is
    the share of the CPUs that other processes took while we measured (0 = a quiet machine).
    """
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    busy = sum(fields[i] for i in (0, 1, 2, 5, 6, 7) if i < len(fields)) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return busy, own.user + own.system, time.perf_counter()


def foreign_share(before, after):
    """Share of all CPUs other processes used between two ``cpu_snapshot``s (None if unknown)."""
    if before is None or after is None:
        return None
    wall = after[2] - before[2]
    other = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, other / (wall * (os.cpu_count() or 1))) if wall > 0 else None


# ---- environment -------------------------------------------------------------------------


def blas_info() -> dict:
    """NumPy's BLAS (threadpoolctl): name, version, kernel (architecture), threads, library."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return {"name": "unknown", "note": "threadpoolctl not installed: pip install threadpoolctl"}
    blas = [m for m in threadpool_info() if m.get("user_api") == "blas"]
    mine = [m for m in blas if "numpy" in m.get("filepath", "")] or blas
    if not mine:
        return {"name": "unknown", "note": "threadpoolctl found no BLAS"}
    m = mine[0]
    return {"name": m.get("internal_api"), "version": m.get("version"), "kernel": m.get("architecture"),
            "threads": m.get("num_threads"), "threading_layer": m.get("threading_layer"),
            "library": os.path.basename(m.get("filepath", ""))}


def blas_threads() -> int:
    threads = blas_info().get("threads")
    return int(threads) if threads else (os.cpu_count() or 1)


def openblas_env() -> dict:
    """The OpenBLAS kernel-forcing variables as this process saw them (None = unset)."""
    return {var: os.environ.get(var) for var in OPENBLAS_VARS}


def machine_info() -> dict:
    """CPU model, core count and platform; with the CuPy backend also the GPU's name."""
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu or platform.machine(), "cores": os.cpu_count(), "platform": platform.platform()}
    if backend.backend_name() == "cupy":
        info["gpu"] = gpu_name()
    return info


def gpu_name():
    """The current CUDA device's name as CuPy reports it (None when it cannot say)."""
    try:
        props = backend.xp.cuda.runtime.getDeviceProperties(backend.xp.cuda.Device().id)
    except Exception:  # noqa: BLE001 - a description, never a reason to fail the benchmark
        return None
    name = props.get("name") if isinstance(props, dict) else None
    return name.decode() if isinstance(name, bytes) else name


def versions(torch=None) -> dict:
    from .. import __version__
    from ..layers.fast import fused

    out = {"rnnlab": __version__, "python": platform.python_version(), "numpy": np.__version__,
           "torch": getattr(torch, "__version__", None)}
    try:
        import threadpoolctl
        out["threadpoolctl"] = threadpoolctl.__version__
    except ImportError:
        out["threadpoolctl"] = None
    out["numba"] = getattr(fused.numba, "__version__", None)
    try:
        import scipy
        out["scipy"] = scipy.__version__
    except ImportError:
        out["scipy"] = None
    if backend.backend_name() == "cupy":
        out["cupy"] = getattr(backend.xp, "__version__", None)
    return out


def fused_kernels(cell: str) -> bool:
    """Whether rnnlab's layers of this cell run the fused numba step kernels here."""
    from ..layers import fast

    return fast.runs_fused(layer_class(check_cell(cell))(1))


def compiled_loops(cell: str) -> bool:
    """Whether rnnlab's layers of this cell run their whole time loops as compiled calls
    (``layers/fast/compiled.py``: the fused kernels and SciPy's BLAS in one call per direction)."""
    from ..layers import fast

    return fast.runs_compiled(layer_class(check_cell(cell))(1))
