"""Peak memory of each side, each in its own fresh subprocess.

A subprocess (``python -c``; the rnnlab one never imports torch) builds one side's model, does
3 training steps and 1 inference step, and reports its peak RSS and the part of it above the
RSS it had after imports and data (``delta``: what the model and its training need, without
the libraries' code). Host memory only: with the CuPy backend the figures would not count the
GPU's, so ``run_benchmark`` measures memory on the CPU alone.
"""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict

from .configs import BenchConfig, check_cell, get_config, make_windows
from .measure import blas_threads

METHOD = ("fresh subprocess per side, 3 train + 1 infer steps; peak = VmHWM (ru_maxrss off Linux); "
          "delta = peak - RSS after imports and data")


def rss_kb() -> int:
    """Peak resident set size of this process so far, in KiB.

    Linux: ``VmHWM`` of /proc/self/status, which belongs to this process's address space and
    starts afresh at exec. (``ru_maxrss`` does not: it is inherited through fork and exec, so a
    subprocess of a large parent would report the parent's peak.) Elsewhere ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak // 1024) if sys.platform == "darwin" else int(peak)  # macOS reports bytes


def memory_worker(spec_json: str) -> None:
    """Entry point of a memory subprocess: build one side's model, 3 train + 1 infer steps,
    print {"baseline_kb", "peak_kb", "loss"} as JSON."""
    spec = json.loads(spec_json)
    cfg = BenchConfig(**spec["config"])
    windows = make_windows(cfg, 4, spec["seed"])
    if spec["side"] == "torch":
        import torch

        from .torch_side import TorchRunner

        torch.set_num_threads(spec["threads"])
        baseline = rss_kb()
        runner = TorchRunner(torch, cfg, spec["cell"], windows, spec["seed"])
    else:
        from .rnnlab_side import RnnlabRunner

        baseline = rss_kb()
        runner = RnnlabRunner(cfg, spec["cell"], windows, spec["seed"], spec.get("model", "lm"))
    for _ in range(3):
        runner.train_step()
    runner.infer_step()
    print(json.dumps({"baseline_kb": baseline, "peak_kb": rss_kb(), "loss": runner.last_loss}))


def measure_memory(config, cell: str = "lstm", side: str = "rnnlab", seed: int = 0, model: str = "lm",
                   threads: int | None = None, timeout: float = 600) -> dict:
    """Peak RSS (MB) of one side training ``config`` in a fresh subprocess, and the part above
    its RSS after imports and data (``delta_mb``). The subprocess inherits this environment."""
    cfg = get_config(config)
    spec = {"config": asdict(cfg), "cell": check_cell(cell), "side": side, "seed": seed, "model": model,
            "threads": threads or blas_threads()}
    code = f"from rnnlab.bench.memory import memory_worker; memory_worker({json.dumps(json.dumps(spec))})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"memory measurement of {side} on {cfg.name}/{cell} failed: "
                           f"{proc.stderr.strip()[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"peak_mb": out["peak_kb"] / 1024, "delta_mb": (out["peak_kb"] - out["baseline_kb"]) / 1024}
