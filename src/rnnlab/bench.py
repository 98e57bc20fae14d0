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
both alike. Throughput is tokens (B * T) per second of the median step time.

Before every timed step the process sleeps ``settle`` seconds (``SETTLE_S`` = 0.2 by default),
untimed. Both libraries leave worker threads spinning after they return (OpenBLAS's for about
0.1 s, its THREAD_TIMEOUT; PyTorch's OpenMP threads too), so a step started at once after the
other library's shares the two cores with those spinning threads, which no user running one
library sees. Measured on ptb-small LSTM (AMD EPYC, 2 cores): with no pause PyTorch's inference
ran at 13-15k tok/s, with pauses of 0.1-0.3 s at 19-26k; rnnlab's training at 12.7k and
13.3-14.4k. Results from before the pause (``settle_s`` missing) favour whichever side the
other's spinning threads slowed less.

What a result holds (``run_benchmark`` returns a dict; the keys the CLI promises are
``config``, ``rnnlab_train_tok_s``, ``torch_train_tok_s``, ``ratio_train``,
``rnnlab_infer_tok_s``, ``torch_infer_tok_s``, ``ratio_infer``, ``blas``):

- *train*: one full training step on a (B, T) window; *infer*: forward and loss value,
  no gradient (a perplexity evaluation), state carried as well.
- ``ratio_*`` = rnnlab tokens/s / PyTorch tokens/s (> 1: rnnlab is faster).
- ``train_flops``: the matrix-multiply FLOPs of a training step. With G gates (LSTM 4, GRU 3)
  and D_l the input size of layer l (E for the first, H after), the forward pass multiplies

      per layer:  x (BT, D_l) @ W (D_l, GH)   and, T times,  h (B, H) @ U (H, GH)
      decoder:    h (BT, H) @ W_out (H, V)

  i.e. ``2 B T (sum_l (D_l G H + H G H) + H V)`` FLOPs, and backward does two multiplies of
  the same size for each of these (gradient of the weights and of the input), so a training
  step is 3x the forward count. Inference counts the forward pass alone.
- ``gemm_peak_gflops``: NumPy float32 GEMM rate on a square n=1024 product (best of 5), the
  "measured GEMM peak"; ``rnnlab_train_gflops`` / that = the fraction of peak achieved.
- ``gemm_only_ms``: the step's own matrix multiplies (the shapes above, the T small
  recurrent ones one by one) timed alone with NumPy, i.e. the GEMM-bound time of a training
  step with this BLAS; ``rnnlab_step_over_gemm`` = rnnlab step time / that (1.0 = everything
  but the multiplies is free).
- Memory (``memory=True``): each side runs in its own fresh subprocess (``python -c``; the
  rnnlab one never imports torch), does 3 training steps and 1 inference step, and reports its
  peak RSS (``ru_maxrss``) and the part of it above the RSS it had after imports and data
  (``*_rss_delta_mb``: what the model and its training need, without the libraries' code).
  Peak RSS is ``VmHWM`` (/proc/self/status) on Linux, ``ru_maxrss`` elsewhere.
  The same is repeated at twice the bptt to show how memory grows with the window.
- ``foreign_cpu_share``: the share of all CPUs that *other* processes used while the steps
  were timed (/proc/stat busy time minus this process's CPU time; 0 = quiet machine). Above
  0.05 a note marks the result as noisy. ``spread`` values: interquartile range / median of
  the step times of each side.
- ``fused_kernels``: whether rnnlab's layers ran the fused numba step kernels (``layers/fused.py``;
  numba installed and ``RNNLAB_FUSED`` not 0), with ``versions["numba"]``.
- ``blas``: NumPy's BLAS as threadpoolctl reports it (name, version, kernel, threads), and
  ``openblas_env`` whether ``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` were set (they force
  a kernel when OpenBLAS loads; benchmark with both unset:
  ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE rnnlab bench --config all``).

PyTorch gets ``torch.set_num_threads`` equal to NumPy's BLAS thread count. Without PyTorch
installed the rnnlab figures are still measured, the torch ones are None, and ``notes`` says so.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from . import backend

# ---- configurations ----------------------------------------------------------------------


@dataclass(frozen=True)
class BenchConfig:
    """One benchmark shape: vocabulary / embedding / hidden / layers / batch / bptt."""

    name: str
    vocab: int
    emb: int
    hidden: int
    layers: int
    batch: int
    bptt: int

    def __post_init__(self):
        for field in ("vocab", "emb", "hidden", "layers", "batch", "bptt"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"BenchConfig {self.name!r}: {field} must be >= 1, got {getattr(self, field)}")


CONFIGS = {
    "ptb-small": BenchConfig("ptb-small", 10000, 200, 200, 2, 20, 35),
    "ptb-medium": BenchConfig("ptb-medium", 10000, 650, 650, 2, 20, 35),
    "char": BenchConfig("char", 65, 128, 512, 2, 64, 100),
    "long-small": BenchConfig("long-small", 50, 64, 64, 1, 32, 1000),
}

CELLS = ("lstm", "gru")
GATES = {"lstm": 4, "gru": 3}
CLIP = 5.0
LR = 1.0
INIT = 0.1
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
SETTLE_S = 0.2   # seconds of idle before each timed step: the other side's threads stop spinning


def get_config(config) -> BenchConfig:
    """A ``BenchConfig`` from a name in ``CONFIGS``, a dict of its fields, or itself."""
    if isinstance(config, BenchConfig):
        return config
    if isinstance(config, dict):
        return BenchConfig(**{"name": "custom", **config})
    if config not in CONFIGS:
        raise ValueError(f"unknown benchmark config {config!r}; known: {', '.join(CONFIGS)}")
    return CONFIGS[config]


def _check_cell(cell: str) -> str:
    if cell not in CELLS:
        raise ValueError(f"unknown cell {cell!r}; use one of {list(CELLS)}")
    return cell


# ---- FLOP counts -----------------------------------------------------------------------------


def matmul_flops(config, cell: str = "lstm", train: bool = True) -> int:
    """Matrix-multiply FLOPs of one step (2 per multiply-add; see the module docstring)."""
    cfg, G = get_config(config), GATES[_check_cell(cell)]
    B, T, H, V = cfg.batch, cfg.bptt, cfg.hidden, cfg.vocab
    per_token = sum((cfg.emb if layer == 0 else H) * G * H + H * G * H for layer in range(cfg.layers)) + H * V
    forward = 2 * B * T * per_token
    return 3 * forward if train else forward


def _gemm_shapes(cfg: BenchConfig, cell: str, train: bool):
    """(m, k, n, repeat, trans_a) of every multiply in a step, as a fast implementation does them."""
    G = GATES[cell]
    B, T, H, V = cfg.batch, cfg.bptt, cfg.hidden, cfg.vocab
    BT, GH = B * T, G * H
    shapes = []
    for layer in range(cfg.layers):
        D = cfg.emb if layer == 0 else H
        shapes += [(BT, D, GH, 1, False), (B, H, GH, T, False)]  # x @ W;  T x h @ U
        if train:
            shapes += [(D, BT, GH, 1, True),    # dW = x^T dG
                       (BT, GH, D, 1, False),   # dx = dG W^T
                       (H, BT, GH, 1, True),    # dU = h_prev^T dG (all steps at once)
                       (B, GH, H, T, False)]    # T x dh = dG_t U^T
    shapes.append((BT, H, V, 1, False))          # logits = h W_out
    if train:
        shapes += [(H, BT, V, 1, True), (BT, V, H, 1, False)]  # dW_out, dh
    return shapes


def gemm_only_time(config, cell: str = "lstm", train: bool = True, repeats: int = 3) -> float:
    """Seconds the step's matrix multiplies take alone in NumPy float32 (median of repeats)."""
    cfg = get_config(config)
    rng = np.random.default_rng(0)
    work = []
    for m, k, n, rep, trans_a in _gemm_shapes(cfg, _check_cell(cell), train):
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
    key = (n, _blas_threads())
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


def _blas_threads() -> int:
    threads = blas_info().get("threads")
    return int(threads) if threads else (os.cpu_count() or 1)


def openblas_env() -> dict:
    """The OpenBLAS kernel-forcing variables as this process saw them (None = unset)."""
    return {var: os.environ.get(var) for var in OPENBLAS_VARS}


def machine_info() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": cpu or platform.machine(), "cores": os.cpu_count(), "platform": platform.platform()}


def versions(torch=None) -> dict:
    from . import __version__

    out = {"rnnlab": __version__, "python": platform.python_version(), "numpy": np.__version__,
           "torch": getattr(torch, "__version__", None)}
    try:
        import threadpoolctl
        out["threadpoolctl"] = threadpoolctl.__version__
    except ImportError:
        out["threadpoolctl"] = None
    from .layers import fused
    out["numba"] = getattr(fused.numba, "__version__", None)
    return out


def fused_kernels(cell: str) -> bool:
    """Whether rnnlab's layers of this cell run the fused numba step kernels here."""
    from .layers import GRU, LSTM

    layer = LSTM(1) if cell == "lstm" else GRU(1)
    return layer._fused(backend.floatx())


def _import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


# ---- data --------------------------------------------------------------------------------


def make_windows(cfg: BenchConfig, n_windows: int, seed: int = 0):
    """``n_windows`` consecutive (inputs, targets) windows of (B, T) int64 ids cut from one
    random stream per batch row (targets are the inputs shifted by one), as batchified text."""
    rng = np.random.default_rng(seed)
    B, T = cfg.batch, cfg.bptt
    stream = rng.integers(0, cfg.vocab, size=(B, n_windows * T + 1), dtype=np.int64)
    return [(np.ascontiguousarray(stream[:, k * T:(k + 1) * T]),
             np.ascontiguousarray(stream[:, k * T + 1:(k + 1) * T + 1])) for k in range(n_windows)]


# ---- the rnnlab side ---------------------------------------------------------------------


class LayerStackLM:
    """The benchmark model from public layers: Embedding -> stacked stateful LSTM/GRU -> Dense.

    ``forward(ids) -> logits (B, T, V)``; ``backward(dlogits)`` fills ``grads``. The recurrent
    layers are ``stateful``: each call starts from the previous call's last state, without
    backpropagating into it (truncated BPTT), as ``models.LanguageModel`` does.
    """

    def __init__(self, cfg: BenchConfig, cell: str = "lstm", seed: int = 0):
        from .layers import Dense, Embedding
        from .layers import recurrent

        init = f"uniform:{INIT}"
        rnn_class = {"lstm": recurrent.LSTM, "gru": recurrent.GRU}[_check_cell(cell)]
        extra = {"unit_forget_bias": False} if cell == "lstm" else {}
        self.embedding = Embedding(cfg.vocab, cfg.emb, embeddings_initializer=init, seed=seed)
        self.rnns = [rnn_class(cfg.hidden, return_sequences=True, stateful=True, kernel_initializer=init,
                               recurrent_initializer=init, bias_initializer=init, seed=seed + 1 + i, **extra)
                     for i in range(cfg.layers)]
        self.decoder = Dense(cfg.vocab, kernel_initializer=init, bias_initializer=init,
                             seed=seed + 1 + cfg.layers)
        self.parts = [self.embedding, *self.rnns, self.decoder]

    @property
    def params(self):
        return [p for part in self.parts for p in part.params]

    @property
    def grads(self):
        return [g for part in self.parts for g in part.grads]

    def forward(self, ids):
        x = self.embedding.forward(ids)
        for rnn in self.rnns:
            x = rnn.forward(x)
        return self.decoder.forward(x)

    def backward(self, dlogits):
        dx = self.decoder.backward(dlogits)
        for rnn in reversed(self.rnns):
            dx = rnn.backward(dx)
        self.embedding.backward(dx)

    def reset_states(self):
        for rnn in self.rnns:
            rnn.reset_states()

    def train(self, mode: bool = True):
        for part in self.parts:
            part.train(mode)
        return self

    def eval(self):
        return self.train(False)


def build_rnnlab_model(cfg: BenchConfig, cell: str = "lstm", seed: int = 0, model: str = "lm"):
    """``model="lm"``: ``models.LanguageModel``; ``"layers"``: ``LayerStackLM`` (public layers)."""
    if model == "lm":
        from .models.lm import LanguageModel

        return LanguageModel(cfg.vocab, emb=cfg.emb, hidden=cfg.hidden, layers=cfg.layers, cell=cell,
                             dropout=0.0, init_scale=INIT, seed=seed)
    if model == "layers":
        return LayerStackLM(cfg, cell, seed)
    raise ValueError(f"unknown rnnlab benchmark model {model!r}; use 'lm' or 'layers'")


class RnnlabRunner:
    """One training step / one inference step of the rnnlab model on the next window."""

    def __init__(self, cfg, cell, windows, seed=0, model="lm"):
        from .losses import SoftmaxCrossEntropy
        from .optim import SGD, clip_grad_norm

        if backend.floatx() != "float32":
            raise RuntimeError(f"benchmarks run in float32; floatx is {backend.floatx()}")
        xp = backend.xp
        self.model = build_rnnlab_model(cfg, cell, seed, model)
        self.loss = SoftmaxCrossEntropy()
        self.opt = SGD(lr=LR)
        self.windows = [(xp.asarray(x), xp.asarray(y)) for x, y in windows]
        self.k = 0
        self.last_loss = None
        self.clip = clip_grad_norm

    def _next(self):
        x, y = self.windows[self.k % len(self.windows)]
        self.k += 1
        return x, y

    def reset(self):
        self.model.reset_states()
        self.k = 0

    def train_step(self):
        x, y = self._next()
        model = self.model
        self.last_loss = self.loss.forward(model.forward(x), y)
        model.backward(self.loss.backward())
        grads = model.grads
        self.clip(grads, CLIP)
        self.opt.step(model.params, grads)
        _sync()

    def infer_step(self):
        x, y = self._next()
        self.last_loss = self.loss.forward(self.model.forward(x), y)
        _sync()


def _sync():
    if backend.backend_name() == "cupy":  # pragma: no cover - GPU only
        backend.xp.cuda.Device().synchronize()


# ---- the PyTorch side --------------------------------------------------------------------


def build_torch_model(torch, cfg: BenchConfig, cell: str = "lstm", seed: int = 0):
    """nn.Embedding -> nn.LSTM/GRU (batch_first, cfg.layers) -> nn.Linear, all U(-0.1, 0.1)."""
    nn = torch.nn

    class TorchLM(nn.Module):
        def __init__(self):
            super().__init__()
            # float32 whatever torch's default dtype is (parity tests set float64)
            f32 = {"dtype": torch.float32}
            self.embedding = nn.Embedding(cfg.vocab, cfg.emb, **f32)
            rnn_class = nn.LSTM if cell == "lstm" else nn.GRU
            self.rnn = rnn_class(cfg.emb, cfg.hidden, num_layers=cfg.layers, batch_first=True, **f32)
            self.decoder = nn.Linear(cfg.hidden, cfg.vocab, **f32)

        def forward(self, ids, state):
            y, state = self.rnn(self.embedding(ids), state)
            return self.decoder(y), state

    torch.manual_seed(seed)
    model = TorchLM()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-INIT, INIT)
    return model


class TorchRunner:
    """The idiomatic PyTorch loop: detach the carried state, forward, loss, backward, clip, step."""

    def __init__(self, torch, cfg, cell, windows, seed=0, device="cpu"):
        self.torch = torch
        self.device = device
        self.model = build_torch_model(torch, cfg, _check_cell(cell), seed).to(device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=LR)
        self.windows = [(torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)) for x, y in windows]
        self.vocab = cfg.vocab
        self.state = None
        self.k = 0
        self.last_loss = None

    def _next(self):
        x, y = self.windows[self.k % len(self.windows)]
        self.k += 1
        return x, y

    def reset(self):
        self.state = None
        self.k = 0

    def _detached(self):
        s = self.state
        if s is None:
            return None
        return tuple(t.detach() for t in s) if isinstance(s, tuple) else s.detach()

    def train_step(self):
        torch = self.torch
        x, y = self._next()
        self.model.train()
        logits, self.state = self.model(x, self._detached())
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, self.vocab), y.reshape(-1))
        self.opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.opt.step()
        self.last_loss = loss.item()  # a host float, as rnnlab's loss returns (and a sync on a GPU)

    def infer_step(self):
        torch = self.torch
        x, y = self._next()
        self.model.eval()
        with torch.inference_mode():
            logits, self.state = self.model(x, self.state)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, self.vocab), y.reshape(-1))
        self.last_loss = loss.item()


# ---- timing ------------------------------------------------------------------------------


def _interleaved(fns: dict, warmup: int, steps: int, progress=None, settle: float = 0.0) -> dict:
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


def _cpu_snapshot():
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


def _foreign_share(before, after):
    if before is None or after is None:
        return None
    wall = after[2] - before[2]
    other = (after[0] - before[0]) - (after[1] - before[1])
    return max(0.0, other / (wall * (os.cpu_count() or 1))) if wall > 0 else None


def _summary(times: list, tokens: int) -> dict:
    med = statistics.median(times)
    q = np.percentile(times, [25, 75]) if len(times) > 1 else (med, med)
    return {"median_s": med, "min_s": min(times), "tok_s": tokens / med,
            "spread": float((q[1] - q[0]) / med) if med > 0 else 0.0}


# ---- memory (subprocesses) -----------------------------------------------------------------


def _rss_kb() -> int:
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


def _memory_worker(spec_json: str) -> None:
    """Entry point of a memory subprocess: build one side's model, 3 train + 1 infer steps,
    print {"baseline_kb", "peak_kb"} as JSON."""
    spec = json.loads(spec_json)
    cfg = BenchConfig(**spec["config"])
    windows = make_windows(cfg, 4, spec["seed"])
    if spec["side"] == "torch":
        import torch

        torch.set_num_threads(spec["threads"])
        baseline = _rss_kb()
        runner = TorchRunner(torch, cfg, spec["cell"], windows, spec["seed"])
    else:
        baseline = _rss_kb()
        runner = RnnlabRunner(cfg, spec["cell"], windows, spec["seed"], spec.get("model", "lm"))
    for _ in range(3):
        runner.train_step()
    runner.infer_step()
    print(json.dumps({"baseline_kb": baseline, "peak_kb": _rss_kb(), "loss": runner.last_loss}))


def measure_memory(config, cell: str = "lstm", side: str = "rnnlab", seed: int = 0, model: str = "lm",
                   threads: int | None = None, timeout: float = 600) -> dict:
    """Peak RSS (MB) of one side training ``config`` in a fresh subprocess, and the part above
    its RSS after imports and data (``delta_mb``). The subprocess inherits this environment."""
    cfg = get_config(config)
    spec = {"config": asdict(cfg), "cell": _check_cell(cell), "side": side, "seed": seed, "model": model,
            "threads": threads or _blas_threads()}
    code = f"from rnnlab.bench import _memory_worker; _memory_worker({json.dumps(json.dumps(spec))})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"memory measurement of {side} on {cfg.name}/{cell} failed: "
                           f"{proc.stderr.strip()[-2000:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"peak_mb": out["peak_kb"] / 1024, "delta_mb": (out["peak_kb"] - out["baseline_kb"]) / 1024}


# ---- the benchmark -------------------------------------------------------------------------


def run_benchmark(config_name="ptb-small", cell: str = "lstm", steps: int = 20, warmup: int = 3,
                  infer: bool = True, use_torch: bool = True, memory: bool = False, gemm: bool = True,
                  threads: int | None = None, seed: int = 0, model: str = "lm", progress: bool = False,
                  settle: float = SETTLE_S) -> dict:
    """Time rnnlab and PyTorch on one config (interleaved, same data); return the figures.

    ``config_name``: a name in ``CONFIGS``, a ``BenchConfig`` or a dict of its fields.
    ``steps`` timed steps after ``warmup`` untimed ones, for training and again for inference.
    ``use_torch=False`` (or torch not installed) measures rnnlab alone. ``memory=True`` adds
    the peak-RSS subprocess measurements; ``gemm=False`` skips the GEMM peak and GEMM-only
    timings. ``threads``: BLAS and torch threads (default: NumPy's BLAS thread count).
    ``model``: ``"lm"`` (``LanguageModel``) or ``"layers"`` (``LayerStackLM``).
    ``settle``: seconds of sleep before each timed step (0: back to back).
    """
    cfg = get_config(config_name)
    _check_cell(cell)
    if steps < 1 or warmup < 0:
        raise ValueError(f"run_benchmark: need steps >= 1 and warmup >= 0, got steps={steps}, warmup={warmup}")
    if not settle >= 0:
        raise ValueError(f"run_benchmark: settle must be >= 0 seconds, got {settle}")
    notes = []
    torch = _import_torch() if use_torch else None
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
        n_threads = int(threads) if threads is not None else _blas_threads()
        old_torch_threads = None
        if torch is not None:
            old_torch_threads = torch.get_num_threads()
            torch.set_num_threads(n_threads)
        try:
            result = _run(cfg, cell, steps, warmup, infer, torch, memory, gemm, n_threads, seed, model,
                          progress, notes, settle)
        finally:
            if old_torch_threads is not None:
                torch.set_num_threads(old_torch_threads)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    return result


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
    if backend.backend_name() == "cupy":  # pragma: no cover - GPU only
        gemm = False
        notes.append("CuPy backend: the GEMM peak and GEMM-only figures are NumPy (CPU) ones, skipped")
        if torch is not None and torch.cuda.is_available():
            device = "cuda"
        else:
            notes.append("CuPy backend but PyTorch has no CUDA: PyTorch runs on the CPU")
    sides = {"rnnlab": RnnlabRunner(cfg, cell, windows, seed, model)}
    if torch is not None:
        sides["torch"] = TorchRunner(torch, cfg, cell, windows, seed, device=device)

    cpu_before = _cpu_snapshot()
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=(warmup + steps) * (2 if infer else 1), desc=f"bench {cfg.name}/{cell}",
                   file=sys.stderr, leave=False)
    train_t = _interleaved({k: s.train_step for k, s in sides.items()}, warmup, steps, bar, settle)
    train_loss = {k: s.last_loss for k, s in sides.items()}
    infer_t = None
    if infer:
        for s in sides.values():
            s.reset()
        infer_t = _interleaved({k: s.infer_step for k, s in sides.items()}, warmup, steps, bar, settle)
    if bar is not None:
        bar.close()
    foreign = _foreign_share(cpu_before, _cpu_snapshot())

    train_flops, infer_flops = matmul_flops(cfg, cell, True), matmul_flops(cfg, cell, False)
    res = {"config": cfg.name, "cell": cell, **{k: v for k, v in asdict(cfg).items() if k != "name"},
           "steps": steps, "warmup": warmup, "settle_s": settle, "tokens_per_step": tokens, "threads": n_threads,
           "rnnlab_model": model, "backend": backend.backend_name(), "torch_device": device if torch else None,
           "dtype": backend.floatx(), "fused_kernels": fused_kernels(cell)}
    for phase, times in (("train", train_t), ("infer", infer_t)):
        for side in ("rnnlab", "torch"):
            s = _summary(times[side], tokens) if times is not None and side in times else None
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
        res["memory_method"] = ("fresh subprocess per side, 3 train + 1 infer steps; peak = VmHWM "
                                "(ru_maxrss off Linux); "
                                "delta = peak - RSS after imports and data")
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
    res["blas"] = blas_info()
    res["openblas_env"] = env
    res["machine"] = machine_info()
    res["versions"] = versions(torch)
    res["notes"] = notes
    return res


# ---- the table -------------------------------------------------------------------------------


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def format_table(results: list) -> str:
    """The results as a Markdown table (one row per config and cell), and the shared context."""
    head = ["config", "cell", "train tok/s rnnlab", "torch", "ratio", "infer tok/s rnnlab", "torch", "ratio",
            "GFLOP/step", "rnnlab GFLOP/s (% peak)", "step / GEMM-only", "RSS delta MB rnnlab", "torch", "others' CPU"]
    rows = []
    for r in results:
        pct = f" ({100 * r['rnnlab_peak_fraction']:.0f}%)" if r.get("rnnlab_peak_fraction") else ""
        rows.append([r["config"], r["cell"], _fmt(r["rnnlab_train_tok_s"], ",.0f"), _fmt(r["torch_train_tok_s"], ",.0f"),
                     _fmt(r["ratio_train"], ".2f"), _fmt(r["rnnlab_infer_tok_s"], ",.0f"),
                     _fmt(r["torch_infer_tok_s"], ",.0f"), _fmt(r["ratio_infer"], ".2f"),
                     f"{r['train_flops'] / 1e9:.2f}", _fmt(r["rnnlab_train_gflops"], ".1f") + pct,
                     _fmt(r.get("rnnlab_step_over_gemm"), ".2f"), _fmt(r.get("rnnlab_rss_delta_mb"), ".0f"),
                     _fmt(r.get("torch_rss_delta_mb"), ".0f"),
                     "-" if r.get("foreign_cpu_share") is None else f"{100 * r['foreign_cpu_share']:.0f}%"])
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    line = lambda cells: "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"  # noqa: E731
    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [line(row) for row in rows]
    if results:
        r = results[0]
        b = r["blas"]
        out.append("")
        out.append(f"BLAS: {b.get('name')} {b.get('version', '')} kernel {b.get('kernel')}, "
                   f"{b.get('threads')} threads ({b.get('library', '')}); torch threads {r['threads']}")
        out.append("OpenBLAS env: " + ", ".join(f"{k}={v if v is not None else 'unset'}"
                                                for k, v in r["openblas_env"].items()))
        if r.get("gemm_peak_gflops"):
            out.append(f"GEMM peak: {r['gemm_peak_gflops']:.1f} GFLOP/s ({r['gemm_peak_shape']})")
        m, v = r["machine"], r["versions"]
        out.append(f"machine: {m['cpu']}, {m['cores']} cores; rnnlab {v['rnnlab']}, numpy {v['numpy']}, "
                   f"torch {v['torch']}, python {v['python']}")
        kernels = {res["cell"]: res.get("fused_kernels") for res in results}
        out.append("rnnlab step loops: " + ", ".join(
            f"{cell} {'fused numba kernels' if on else 'NumPy'}" for cell, on in kernels.items())
            + f" (numba {v.get('numba') or 'not installed'})")
        for note in dict.fromkeys(n for res in results for n in res["notes"]):
            out.append(f"note: {note}")
    return "\n".join(out)
