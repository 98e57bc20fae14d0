"""``truncation``: can truncated BPTT with window k learn a dependency that spans L > k steps?

Task (generated here): a stream of random bits x_t; the target at every step t >= L is the bit
seen L steps earlier, x_{t-L} (an echo at lag L; chance is 50%). An LSTM(return_sequences,
``stateful=True``) -> Dense(2) reads each training stream in windows of k steps: the state is
carried from one window into the next (forward), but the gradient stops at the window's start
(truncated BPTT). Windows with no target yet only advance the state. Accuracy is measured on
new streams read whole.

Memory: the peak of the memory NumPy allocates (``tracemalloc``) during one forward and
backward pass over a stream of growing length, read whole (full BPTT) or in windows of k.
These byte counts include a few of Python's own allocations, so they can differ by some bytes
from run to run; everything trained is deterministic under the seed.
"""
from __future__ import annotations

import tracemalloc

import numpy as np

from .. import backend
from ..layers import LSTM, Dense
from ..losses import SoftmaxCrossEntropy
from ..models.base import Sequential
from ..optim import Adam
from .common import one_hot, pick, seed_everything
from .report import Report, grid_and_legend
from .training import ExperimentTask, train_task

QUESTION = ("Does the carried state let truncated BPTT (window k) learn a dependency that spans L > k "
            "steps, and how does its memory compare with full BPTT as the sequence grows?")
IGNORE = -100
SIZES = {
    "tiny": {"units": 16, "stream": 24, "batch": 16, "streams": 40, "windows": [2, 6], "lags": [1, 4],
             "memory_lengths": [25, 50, 100], "memory_window": 5},
    "default": {"units": 32, "stream": 60, "batch": 32, "streams": 200, "windows": [2, 4, 8, 16],
                "lags": [1, 3, 6, 12], "memory_lengths": [50, 100, 200, 400, 800], "memory_window": 10},
}


def echo_data(rng, n: int, length: int, lag: int):
    """x one-hot (n, length, 2); y (n, length): x_{t-lag}, IGNORE for t < lag."""
    bits = rng.integers(2, size=(n, length))
    y = np.full((n, length), IGNORE, dtype=np.int64)
    y[:, lag:] = bits[:, :-lag]
    return one_hot(bits, 2), backend.xp.asarray(y)


def _model(units: int, seed: int):
    return Sequential([LSTM(units, return_sequences=True, stateful=True, seed=seed), Dense(2, seed=seed + 1)])


class WindowTask(ExperimentTask):
    """Truncated-BPTT training over streams ``x`` (N, T, 2), ``y`` (N, T) in groups of ``batch``.

    Each batch is a descriptor ``(group start, window start)`` of one window of k steps that
    holds a target. Its step first brings the carried state to the window's start: at a group's
    first such window it resets the state; then it forwards the target-less windows since the
    previous trainable one (they only advance the state: no gradient, no optimizer step). So the
    state sees, per group: a reset, then every window from the first, in the stream's order."""

    def __init__(self, model, loss, optimizer, x, y, k: int, batch: int):
        self.x, self.y, self.k, self.batch = x, y, k, batch
        self._before = {}  # descriptor -> (reset first?, starts of the target-less windows to forward)
        super().__init__(model, loss, optimizer, self._descriptors())

    def _window(self, group: int, t: int):
        rows = slice(group, group + self.batch)
        return self.x[rows, t:t + self.k], self.y[rows, t:t + self.k]

    def _descriptors(self) -> list:
        found = []
        for group in range(0, len(self.x), self.batch):
            reset, skipped = True, []
            for t in range(0, self.x.shape[1], self.k):
                if bool((self._window(group, t)[1] == IGNORE).all()):
                    skipped.append(t)
                    continue
                found.append((group, t))
                self._before[(group, t)] = (reset, skipped)
                reset, skipped = False, []
        return found

    def inputs(self, batch) -> tuple:
        group, t = batch
        reset, skipped = self._before[batch]
        if reset:
            self.model.sublayers[0].reset_states()
        for start in skipped:
            self.model.forward(self._window(group, start)[0])
        return self._window(group, t)


def accuracy(model, x, y) -> float:
    model.sublayers[0].reset_states()
    pred = backend.to_numpy(model.forward(x)).argmax(-1)
    y = backend.to_numpy(y)
    counted = y != IGNORE
    return float((pred[counted] == y[counted]).mean())


def peak_memory(units: int, length: int, k: int | None, seed: int) -> int:
    """Peak bytes NumPy allocates for one forward + backward pass over one stream of ``length``
    steps (batch 16), whole (k None) or in windows of k."""
    model = _model(units, seed)
    x, y = echo_data(np.random.default_rng(seed), 16, length, 1)
    loss = SoftmaxCrossEntropy(ignore_index=IGNORE)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        step = length if k is None else k
        model.sublayers[0].reset_states()
        for t in range(0, length, step):
            loss.forward(model.forward(x[:, t:t + step]), y[:, t:t + step])
            model.backward(loss.backward())
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def run(out, seed: int = 0, size: str = "tiny") -> dict:
    cfg = pick(size, SIZES)
    rng = seed_everything(seed)
    report = Report(out, "truncation", QUESTION, seed, size)
    ks, lags = cfg["windows"], cfg["lags"]
    grid = {}
    for lag in lags:
        x, y = echo_data(rng, cfg["streams"] * cfg["batch"], cfg["stream"], lag)
        ex, ey = echo_data(np.random.default_rng(seed + 1), 200, cfg["stream"], lag)
        for k in ks:
            model = _model(cfg["units"], seed)
            train_task(WindowTask(model, SoftmaxCrossEntropy(ignore_index=IGNORE), Adam(lr=1e-2), x, y, k,
                                  cfg["batch"]), clip=1.0)
            grid[(k, lag)] = accuracy(model, ex, ey)
    memory = {length: (peak_memory(cfg["units"], length, None, seed),
                       peak_memory(cfg["units"], length, cfg["memory_window"], seed))
              for length in cfg["memory_lengths"]}

    report.setup({"task": "echo the bit seen L steps earlier (see the module docstring)",
                  "model": f"LSTM({cfg['units']}, stateful) -> Dense(2), Adam lr 0.01, clip 1",
                  "training": f"{cfg['streams']} batches of {cfg['batch']} streams of {cfg['stream']} steps, "
                              f"each read once in windows of k", "evaluation": "200 new streams, read whole"})
    report.table(["window k"] + [f"L = {lag}" for lag in lags],
                 [(k, *[f"{grid[(k, lag)]:.0%}" + (" (L >= k)" if lag >= k else "") for lag in lags]) for k in ks],
                 caption="Accuracy (chance 50%) for window k and dependency length L")
    report.table(["stream length", "full BPTT peak (KB)", f"truncated, k = {cfg['memory_window']} (KB)", "ratio"],
                 [(n, full // 1024, trunc // 1024, full / trunc) for n, (full, trunc) in memory.items()],
                 caption="Peak memory NumPy allocates for one forward + backward pass (tracemalloc, batch 16)")
    report.plot("truncation.png", lambda plt: _draw(plt, ks, lags, grid, memory, cfg["memory_window"]),
                caption="accuracy for each k and L; peak memory against stream length")

    beyond = [grid[(k, lag)] for k in ks for lag in lags if lag >= k]
    within = [grid[(k, lag)] for k in ks for lag in lags if lag < k]
    lengths = cfg["memory_lengths"]
    full_growth = memory[lengths[-1]][0] / memory[lengths[0]][0]
    trunc_growth = memory[lengths[-1]][1] / memory[lengths[0]][1]
    learns_beyond = bool(beyond) and max(beyond) >= 0.9
    figures = {"grid": {f"k={k},L={lag}": a for (k, lag), a in grid.items()},
               "best_beyond_window": max(beyond) if beyond else None,
               "worst_within_window": min(within) if within else None,
               "memory_bytes": {n: {"full": f, "truncated": t} for n, (f, t) in memory.items()},
               "full_memory_growth": full_growth, "truncated_memory_growth": trunc_growth}
    learnt_within = sum(a >= 0.9 for a in within)
    report.answer(f"{'Yes' if learns_beyond else 'No'}: with L >= k the best accuracy is "
                  f"{max(beyond):.0%} (chance 50%), while {learnt_within} of the {len(within)} runs with L < k reach "
                  f"90% or more; from "
                  f"{lengths[0]} to {lengths[-1]} steps the peak memory of full BPTT grows {full_growth:.1f}x and "
                  f"that of truncated BPTT (k = {cfg['memory_window']}) {trunc_growth:.1f}x.")
    report.write(figures)
    return figures


def _draw(plt, ks, lags, grid, memory, window):
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    image = axes[0].imshow([[grid[(k, lag)] for lag in lags] for k in ks], vmin=0.5, vmax=1.0, cmap="viridis")
    axes[0].set_xticks(range(len(lags)))
    axes[0].set_xticklabels([str(lag) for lag in lags])
    axes[0].set_yticks(range(len(ks)))
    axes[0].set_yticklabels([str(k) for k in ks])
    axes[0].set_xlabel("dependency length L")
    axes[0].set_ylabel("window k")
    axes[0].set_title("accuracy (chance 0.5)")
    for i, k in enumerate(ks):
        for j, lag in enumerate(lags):
            axes[0].text(j, i, f"{grid[(k, lag)]:.2f}", ha="center", va="center", fontsize=8,
                         color="black" if grid[(k, lag)] > 0.8 else "white")
    fig.colorbar(image, ax=axes[0])
    lengths = list(memory)
    axes[1].plot(lengths, [memory[n][0] / 1024 for n in lengths], marker="o", label="full BPTT")
    axes[1].plot(lengths, [memory[n][1] / 1024 for n in lengths], marker="o", label=f"truncated, k = {window}")
    axes[1].set_xlabel("stream length (steps)")
    axes[1].set_ylabel("peak allocated (KB)")
    axes[1].set_title("memory of one forward + backward")
    grid_and_legend(axes[1:], fontsize=8)
    return fig
