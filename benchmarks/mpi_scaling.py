"""Data-parallel scaling on MPI: measured on this machine for N = 1 and 2, modelled for N = 4..64.

    python benchmarks/mpi_scaling.py                      # ptb-small, ptb-medium, char; a few minutes
    python benchmarks/mpi_scaling.py --configs ptb-small --steps 20 --json scaling.json

For each benchmark shape (``rnnlab.bench.configs``: the word LM of Zaremba et al. at
ptb-small and ptb-medium sizes, and the char LM) it times the training step of the one training
loop (``Trainer._step``: shard, forward, backward, count-weighted ``Allreduce``, clip, SGD) on
random token windows, three ways:

    1 process,  1 BLAS thread      (OPENBLAS_NUM_THREADS=1)
    1 process,  2 BLAS threads     (both cores through BLAS)
    2 processes, 1 BLAS thread each (mpiexec -n 2 --oversubscribe; the same global batch)

and reports tokens/s (global batch x bptt / median step time of rank 0), the time rank 0 spent
in ``allreduce_mean_`` per step (packing, the ``Allreduce`` and waiting for the slower rank),
the gradient bytes per step, the embedding's share of them and what a sparse embedding
gradient (only the rows of the batch's distinct tokens, with their indices) would send.

**The model for N ranks** (strong scaling: the global batch stays the same). With t1 the
measured 1-process compute time of a step, S the gradient bytes, b the link bandwidth
(bytes/s) and a the per-message latency, a ring all-reduce costs

    t_comm(N) = 2 (N - 1) / N * S / b + 2 (N - 1) a

Strong scaling (the global batch B split): ``t(N) = t1 / N + t_comm(N)``, speed-up
``t1 / t(N)``, only up to N = B. Weak scaling (each rank a whole batch B): ``t(N) = t1 +
t_comm(N)``, speed-up in tokens/s ``N t1 / t(N)``. No overlap of communication with backward
and a perfect division of the compute (optimistic: small per-rank batches use the BLAS less
well). With a sparse embedding gradient the embedding leaves the all-reduce and each rank
all-gathers the others' rows of their distinct tokens (with int64 indices):
``(N - 1) * rows * (E * itemsize + 8) / b``. The script prints the
tables that benchmarks/README.md quotes, with the load average (``os.getloadavg``) before and
after each measurement: figures taken on a loaded machine say so.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
WAYS = (("1 proc x 1 thread", 1, 1), ("1 proc x 2 threads", 1, 2), ("2 procs x 1 thread", 2, 1))
RANKS = (4, 8, 16, 32, 64)
LINKS_GBIT = (10, 25, 100)
LATENCY_S = 20e-6  # per message over TCP on Ethernet (an assumption, not measured here)


# ---- the worker: one measurement, run under the environment the driver chose -----------------
def worker(config_name: str, steps: int, warmup: int) -> None:
    import numpy as np

    from rnnlab import distributed as dist
    from rnnlab.bench.configs import CONFIGS
    from rnnlab.data.batching import BPTTBatches
    from rnnlab.losses import SoftmaxCrossEntropy
    from rnnlab.models.lm import LanguageModel
    from rnnlab.optim import SGD
    from rnnlab.train.loop import Task, Trainer

    cfg = CONFIGS[config_name]
    w = dist.world()

    class BenchTask(Task):
        name, unit = "bench", "window"

        def setup(self):
            self.model = LanguageModel(cfg.vocab, emb=cfg.emb, hidden=cfg.hidden, layers=cfg.layers, cell="lstm",
                                       init_scale=0.05, seed=0)
            self.optimizer, self.loss_fn = SGD(lr=1.0), SoftmaxCrossEntropy()
            ids = np.random.default_rng(0).integers(0, cfg.vocab, size=cfg.batch * cfg.bptt * (steps + warmup) + 1)
            self.batches = BPTTBatches(ids, cfg.batch, cfg.bptt)

        def epoch_batches(self, epoch):
            return self.batches

        def train_step(self, batch):
            x, y = batch
            loss = self.loss_fn.forward(self.model.forward(x), y)
            self.model.backward(self.loss_fn.backward())
            return loss, self.loss_fn.count

    task = BenchTask()
    task.setup()
    trainer = Trainer(task, clip=5.0, progress=False, log=False)
    reduce_s = []
    allreduce = dist.allreduce_mean_

    def timed_allreduce(*args, **kwargs):
        t0 = time.perf_counter()
        out = allreduce(*args, **kwargs)
        reduce_s.append(time.perf_counter() - t0)
        return out

    dist.allreduce_mean_ = timed_allreduce
    step_s, distinct = [], []
    trainer.pos = {"first_loss": None}  # what fit() sets up and _step reads (the explosion check)
    for i in range(warmup + steps):
        dist.barrier()  # every rank starts the step together: rank 0's time is the step's
        t0 = time.perf_counter()
        trainer._step(task.batches[i], f"step {i}")
        step_s.append(time.perf_counter() - t0)
        distinct.append(len(np.unique(task.batches[i][0])))
    model = task.model
    grad_bytes = sum(int(g.size) * g.dtype.itemsize for g in model.grads)
    emb = model.embedding.params[0]
    if w.is_writer:
        print(json.dumps({
            "config": config_name, "ranks": w.size, "threads": os.environ.get("OPENBLAS_NUM_THREADS"),
            "tokens_per_step": cfg.batch * cfg.bptt, "step_s": step_s[warmup:],
            "allreduce_s": reduce_s[warmup:] if reduce_s else [], "grad_bytes": grad_bytes,
            "embedding_bytes": int(emb.size) * emb.dtype.itemsize, "emb": cfg.emb,
            "itemsize": emb.dtype.itemsize, "distinct_tokens": float(np.mean(distinct)),
            "params": model.count_params(), "batch": cfg.batch}), flush=True)


# ---- the driver -------------------------------------------------------------------------------
def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else float("nan")


def measure(config_name: str, ranks: int, threads: int, steps: int, warmup: int) -> dict:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "OMP_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads), "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")]),
           "OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1",
           "OMPI_MCA_mpi_yield_when_idle": "1"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", config_name, "--steps", str(steps),
           "--warmup", str(warmup)]
    if ranks > 1:
        mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
        if mpiexec is None:
            raise SystemExit("mpiexec not found: pip install 'rnnlab[mpi]'")
        cmd = [mpiexec, "-n", str(ranks), "--oversubscribe", "--bind-to", "none", *cmd]
    load_before = os.getloadavg()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    row = json.loads([line for line in out.stdout.splitlines() if line.startswith("{")][-1])
    row["load_before"], row["load_after"] = load_before, os.getloadavg()
    row["step_median_s"] = median(row["step_s"])
    row["allreduce_median_s"] = median(row["allreduce_s"]) if row["allreduce_s"] else 0.0
    row["tokens_per_s"] = row["tokens_per_step"] / row["step_median_s"]
    return row


def ring(nbytes: float, ranks: int, gbit: float) -> float:
    """Ring all-reduce of ``nbytes`` over ``ranks`` on a link of ``gbit`` Gbit/s."""
    return 2 * (ranks - 1) / ranks * nbytes / (gbit * 1e9 / 8) + 2 * (ranks - 1) * LATENCY_S


def allgather(nbytes_per_rank: float, ranks: int, gbit: float) -> float:
    """Ring all-gather: every rank receives the other ranks' ``nbytes_per_rank``."""
    return (ranks - 1) * nbytes_per_rank / (gbit * 1e9 / 8) + (ranks - 1) * LATENCY_S


def comm(row: dict, ranks: int, gbit: float, sparse: bool, weak: bool) -> float:
    """Communication per step. Dense: one all-reduce of every gradient. Sparse: the dense rest
    all-reduced, and the embedding sent as the rows of each rank's distinct tokens with their
    int64 indices, all-gathered (a sum of sparse rows is no longer sparse enough to all-reduce).
    ``weak``: each rank keeps the whole preset batch (global batch N B); else the global batch
    is split (each rank ~ 1/N of the distinct tokens)."""
    if not sparse:
        return ring(row["grad_bytes"], ranks, gbit)
    row_bytes = row["emb"] * row["itemsize"] + 8
    rows_per_rank = row["distinct_tokens"] if weak else row["distinct_tokens"] / ranks
    return ring(row["grad_bytes"] - row["embedding_bytes"], ranks, gbit) + \
        allgather(rows_per_rank * row_bytes, ranks, gbit)


def tables(rows: list[dict]) -> str:
    lines = ["| config | way | tokens/s | step (ms) | Allreduce (ms/step) | load avg before / after |",
             "|---|---|---:|---:|---:|---|"]
    for r in rows:
        way = next(name for name, n, t in WAYS if (n, t) == (r["ranks"], int(r["threads"])))
        lines.append(f"| {r['config']} | {way} | {r['tokens_per_s']:,.0f} | {1e3 * r['step_median_s']:.0f} | "
                     f"{1e3 * r['allreduce_median_s']:.1f} | {r['load_before'][0]:.1f} / {r['load_after'][0]:.1f} |")
    base = [r for r in rows if r["ranks"] == 1 and int(r["threads"]) == 1]
    lines += ["", "| config | batch | gradient MB/step | of it embedding MB | distinct tokens/step | "
                  "sparse embedding MB/step |", "|---|---:|---:|---:|---:|---:|"]
    for r in base:
        sparse = r["distinct_tokens"] * (r["emb"] * r["itemsize"] + 8)
        lines.append(f"| {r['config']} | {r['batch']} | {r['grad_bytes'] / 1e6:.1f} | {r['embedding_bytes'] / 1e6:.1f} | "
                     f"{r['distinct_tokens']:.0f} | {sparse / 1e6:.2f} |")
    for weak in (False, True):
        title = ("Weak scaling (each rank the whole preset batch: global batch N B); speed-up in tokens/s "
                 "N t1 / (t1 + t_comm)" if weak else
                 "Strong scaling (the preset's global batch split; N > batch leaves ranks idle: -); speed-up "
                 "t1 / (t1 / N + t_comm)")
        lines += ["", f"{title}; dense gradient (in brackets: sparse embedding gradient):", "",
                  "| config | link | " + " | ".join(f"N={n}" for n in RANKS) + " |",
                  "|---|---|" + "---:|" * len(RANKS)]
        for r in base:
            t1 = r.get("t1_model", r["step_median_s"])
            for gbit in LINKS_GBIT:
                cells = []
                for n in RANKS:
                    if not weak and n > r["batch"]:
                        cells.append("-")
                        continue
                    work = t1 if weak else t1 / n
                    gain = n * t1 if weak else t1
                    dense, sparse = (gain / (work + comm(r, n, gbit, sp, weak)) for sp in (False, True))
                    cells.append(f"{dense:.1f} ({sparse:.1f})")
                lines.append(f"| {r['config']} | {gbit} Gbit/s | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--configs", default="ptb-small,ptb-medium,char")
    p.add_argument("--steps", type=int, default=10, help="timed steps per measurement")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--json", metavar="FILE", help="also write the raw measurements here")
    p.add_argument("--tables", metavar="FILE", help="print the tables of measurements saved with --json")
    p.add_argument("--t1", metavar="CONFIG=SECONDS,...",
                   help="with --tables: model from these 1-process step times (e.g. taken on an idle machine)")
    p.add_argument("--worker", metavar="CONFIG", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.tables:
        rows = json.loads(Path(args.tables).read_text())
        for item in filter(None, (args.t1 or "").split(",")):
            name, seconds = item.split("=")
            for r in rows:
                if r["config"] == name and r["ranks"] == 1 and int(r["threads"]) == 1:
                    r["t1_model"] = float(seconds)
        print(tables(rows))
        return
    if args.worker:
        worker(args.worker, args.steps, args.warmup)
        return
    rows = []
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for name in args.configs.split(","):
        for way, ranks, threads in WAYS:
            print(f"{name}: {way} ...", file=sys.stderr, flush=True)
            rows.append(measure(name, ranks, threads, args.steps, args.warmup))
    print(f"measured {started} to {time.strftime('%H:%M UTC', time.gmtime())} on {os.cpu_count()} CPUs, "
          f"{args.steps} steps after {args.warmup} warm-up\n")
    print(tables(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
