"""``long-range``: at what time lag does each cell stop learning a long-range dependency?

Three tasks, each at growing lags, each with SimpleRNN, LSTM and GRU (same units, same number
of Adam steps, so the comparison is at a fixed training budget):

- adding problem (``data.generated.adding_problem``), lag = sequence length: the target is the
  sum of two marked values; a prediction counts as right within 0.1 of it (always answering
  1.0 scores about 19%). Fails below 50%.
- copy task (``copy_task``), lag = the delay between the symbols and their recall: accuracy
  over the recalled symbols (chance 1/8 with 8 symbols). Fails below 50%.
- embedded Reber grammar (``embedded_reber``), lag = the inner string's length (at least the
  given minimum): the model reads ``B T|P reber-string`` (left-padded with zero vectors) and
  must name the symbol that closes the embedding, the T or P it saw at step 1 (chance 50%).
  Fails below 75%.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..data.generated import REBER_SYMBOLS, adding_problem, copy_task, embedded_reber
from ..layers.kinds import KINDS
from ..losses import MSE, SoftmaxCrossEntropy
from .common import CELL_LABELS, failure_point, fit, one_hot, pick, recurrent_model, seed_everything
from .report import Report, grid_and_legend

QUESTION = ("At which time lag does each of SimpleRNN, LSTM and GRU stop learning a long-range dependency "
            "(adding problem, copy task, embedded Reber grammar) under the same training budget?")
COPY_SYMBOLS, COPY_LEN = 8, 3
FAIL = {"adding": 0.5, "copy": 0.5, "reber": 0.75}
SIZES = {
    "tiny": {"units": 16, "steps": 80, "batch": 32, "n_train": 1000, "n_eval": 200, "lags": [4, 8]},
    "default": {"units": 32, "steps": 500, "batch": 32, "n_train": 4000, "n_eval": 500, "lags": [5, 10, 20, 40, 80]},
}


def _adding(n, lag, seed):
    x, y = adding_problem(n, lag, seed)
    return x, y


def _copy(n, lag, seed):
    x, y = copy_task(n, COPY_LEN, lag, COPY_SYMBOLS, seed)
    return one_hot(x, COPY_SYMBOLS + 2), y


def _reber(n, lag, seed):
    """x (n, T, 7) one-hot, left-padded with zeros; y (n,) 0 for T, 1 for P."""
    strings = [s[:-2] for s in embedded_reber(n, lag, seed)]   # drop the closing "T E" / "P E"
    T = max(len(s) for s in strings)
    x = np.zeros((n, T, len(REBER_SYMBOLS)), dtype=backend.floatx())
    for i, s in enumerate(strings):
        for j, ch in enumerate(s):
            x[i, T - len(s) + j, REBER_SYMBOLS.index(ch)] = 1.0
    y = np.array([0 if s[1] == "T" else 1 for s in strings])
    return backend.asarray(x), backend.xp.asarray(y)


TASKS = {  # name -> (data(n, lag, seed), outputs, per-step outputs?, loss)
    "adding": (_adding, 1, False, MSE),
    "copy": (_copy, COPY_SYMBOLS + 2, True, SoftmaxCrossEntropy),
    "reber": (_reber, 2, False, SoftmaxCrossEntropy),
}


def accuracy(task: str, model, x, y) -> float:
    out = backend.to_numpy(model.forward(x))
    y = backend.to_numpy(y)
    if task == "adding":
        return float((np.abs(out - y) < 0.1).mean())
    if task == "copy":
        recall = slice(-COPY_LEN, None)
        return float((out[:, recall].argmax(-1) == y[:, recall]).mean())
    return float((out.argmax(-1) == y).mean())


def run(out, seed: int = 0, size: str = "tiny") -> dict:
    cfg = pick(size, SIZES)
    seed_everything(seed)
    report = Report(out, "long-range", QUESTION, seed, size)
    lags = cfg["lags"]
    acc = {task: {CELL_LABELS[k]: [] for k in KINDS} for task in TASKS}
    for task, (data, outputs, per_step, loss) in TASKS.items():
        for lag in lags:
            x, y = data(cfg["n_train"], lag, seed)
            ex, ey = data(cfg["n_eval"], lag, seed + 1000)
            for kind in KINDS:
                model = recurrent_model(kind, cfg["units"], outputs, seed, return_sequences=per_step)
                fit(model, loss(), (x, y), np.random.default_rng(seed + lag), cfg["batch"], cfg["steps"])
                acc[task][CELL_LABELS[kind]].append(accuracy(task, model, ex, ey))
    fails = {task: {cell: failure_point(lags, a, FAIL[task]) for cell, a in by_cell.items()}
             for task, by_cell in acc.items()}
    report.setup({"units": cfg["units"], "training": f"{cfg['steps']} Adam steps (lr 0.01, clip 1) of "
                  f"{cfg['batch']} from {cfg['n_train']} sequences, per task, lag and cell",
                  "evaluation": f"{cfg['n_eval']} new sequences", "lags": lags,
                  "failure": "accuracy below " + ", ".join(f"{t} {v:.0%}" for t, v in FAIL.items())},
                 text="See the module docstring (rnnlab.experiments.long_range) for the tasks and their chance levels.")
    for task in TASKS:
        report.table(["cell"] + [f"lag {lag}" for lag in lags] + ["fails at"],
                     [(cell, *[f"{a:.0%}" for a in accs], _lag(fails[task][cell]))
                      for cell, accs in acc[task].items()], caption=f"{task}: accuracy against lag")
    report.plot("long_range.png", lambda plt: _draw(plt, lags, acc), caption="accuracy against lag")
    # the answer: which cell holds out longest, summed over the tasks
    reach = {CELL_LABELS[k]: sum(_reach(lags, fails[t][CELL_LABELS[k]]) for t in TASKS) for k in KINDS}
    best = " and ".join(c for c in reach if reach[c] == max(reach.values()))
    worst = " and ".join(c for c in reach if reach[c] == min(reach.values()))
    summary = "; ".join(f"{task}: " + ", ".join(f"{cell} {_lag(f)}" for cell, f in fails[task].items())
                        for task in TASKS)
    figures = {"lags": lags, "accuracy": acc, "fails_at": fails, "reach": reach}
    if best == worst:
        report.answer(f"At this budget the three cells fail at the same lags ({summary}).")
    else:
        report.answer(f"Summed over the tasks, {best} passed the most tested lags and {worst} the fewest (first failing lag per task "
                      f"and cell: {summary}).")
    report.write(figures)
    return figures


def _lag(fail):
    return "passes all" if fail is None else f"lag {fail}"


def _reach(lags, fail) -> int:
    """How many of the tested lags were passed before the first failure."""
    return len(lags) if fail is None else lags.index(fail)


def _draw(plt, lags, acc):
    fig, axes = plt.subplots(1, len(acc), figsize=(4.3 * len(acc), 3.6))
    for ax, (task, by_cell) in zip(axes, acc.items()):
        for cell, accs in by_cell.items():
            ax.plot(lags, accs, marker="o", label=cell)
        ax.axhline(FAIL[task], color="grey", ls=":", lw=1, label="failure line")
        ax.set_xscale("log")
        ax.set_xlabel("time lag")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1.02)
        ax.set_title(task)
    grid_and_legend(axes)
    return fig
