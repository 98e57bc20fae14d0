"""``parameter-sharing``: do shared weights handle lengths and positions never seen in training?

Task (generated here, seeded): a sequence of symbols from {0, 1, 2, 3}; the target at step t is
1 when x_{t-1} = 1 and x_t = 2 (the pattern "1 2" just ended) and 0 otherwise. Each training
sequence has 10 steps and, half the time, one pattern that ends at a step in 1..4; no other
step ends the pattern. A model outputs a logit at every step (sigmoid cross-entropy); a
sequence counts as right when every step's 0/1 decision is right.

Models: SimpleRNN, LSTM and GRU (one set of weights used at every step) and an ``UntiedRNN``
(one set of weights per step, built for 10 steps), each followed by Dense(1) at every step.

Evaluated on (a) lengths 5..100 with the pattern anywhere, and (b) length 10 with the pattern
ending at each step 1..9, including the steps 5..9 where training never put it. The untied
network refuses a sequence longer than 10 steps with an error (recorded in the table).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..layers import Dense
from ..layers.kinds import KINDS
from ..losses import SigmoidBCE
from ..models.base import Sequential
from .common import CELL_LABELS, fit, one_hot, pick, recurrent_model, seed_everything
from .report import Report, grid_and_legend
from .untied import UntiedRNN, untied_count

QUESTION = ("Do the same parameters at every step let a recurrent network handle lengths and positions "
            "it never saw in training, where a network with separate weights per step cannot?")
SYMBOLS, FIRST, SECOND = 4, 1, 2
TRAIN_LEN, TRAIN_ENDS = 10, (1, 5)    # the pattern ends at a step in [1, 5) in training
SIZES = {
    "tiny": {"units": 12, "steps": 400, "batch": 32, "n_train": 2000, "n_eval": 200, "lengths": [5, 10, 20, 50]},
    "default": {"units": 24, "steps": 600, "batch": 32, "n_train": 8000, "n_eval": 500,
                "lengths": [5, 10, 15, 20, 30, 50, 75, 100]},
}


def pattern_data(rng, n: int, length: int, ends=None, p_pattern: float = 0.5):
    """x ids (n, length), y (n, length, 1) float; ``ends`` = (lo, hi): the pattern ends at a
    step in [lo, hi) (default: anywhere, [1, length)), present with probability ``p_pattern``."""
    lo, hi = ends or (1, length)
    x = rng.integers(SYMBOLS, size=(n, length))
    # remove every chance occurrence of the pattern first
    for t in range(1, length):
        hit = (x[:, t - 1] == FIRST) & (x[:, t] == SECOND)
        x[hit, t] = 3
    y = np.zeros((n, length, 1))
    planted = np.flatnonzero(rng.random(n) < p_pattern)
    where = rng.integers(lo, hi, size=len(planted))
    x[planted, where - 1] = FIRST
    x[planted, where] = SECOND
    y[planted, where, 0] = 1.0
    return x, backend.asarray(y)


def sequence_accuracy(model, x, y) -> float:
    """Fraction of sequences whose every step is decided right (logit > 0 means 1)."""
    logits = backend.to_numpy(model.forward(one_hot(x, SYMBOLS)))
    right = ((logits > 0) == (backend.to_numpy(y) > 0.5)).all(axis=(1, 2))
    return float(right.mean())


def _models(units: int, seed: int) -> dict:
    models = {CELL_LABELS[kind]: recurrent_model(kind, units, 1, seed, return_sequences=True) for kind in KINDS}
    models["untied RNN"] = Sequential([UntiedRNN(units, TRAIN_LEN, return_sequences=True, seed=seed),
                                       Dense(1, seed=seed + 1)])
    return models


def _evaluate(model, x, y):
    """(accuracy, None) or (None, the refusal's message)."""
    try:
        return sequence_accuracy(model, x, y), None
    except ValueError as err:
        return None, str(err)


def run(out, seed: int = 0, size: str = "tiny") -> dict:
    cfg = pick(size, SIZES)
    rng = seed_everything(seed)
    report = Report(out, "parameter-sharing", QUESTION, seed, size)
    x, y = pattern_data(rng, cfg["n_train"], TRAIN_LEN, TRAIN_ENDS)
    x = one_hot(x, SYMBOLS)
    models = _models(cfg["units"], seed)
    final_loss = {}
    for name, model in models.items():
        history = fit(model, SigmoidBCE(), (x, y), np.random.default_rng(seed + 1), cfg["batch"], cfg["steps"])
        final_loss[name] = float(np.mean([h["loss"] for h in history[-20:]]))
    eval_rng = np.random.default_rng(seed + 2)
    by_length = {name: {} for name in models}
    refusal = None
    for length in cfg["lengths"]:
        ex, ey = pattern_data(eval_rng, cfg["n_eval"], length)
        for name, model in models.items():
            acc, err = _evaluate(model, ex, ey)
            by_length[name][length] = acc
            if err and refusal is None:
                refusal = err
    positions = list(range(1, TRAIN_LEN))
    by_position = {name: {} for name in models}
    for end in positions:
        ex, ey = pattern_data(eval_rng, cfg["n_eval"], TRAIN_LEN, (end, end + 1), p_pattern=1.0)
        for name, model in models.items():
            by_position[name][end] = _evaluate(model, ex, ey)[0]
    shared = models[CELL_LABELS["rnn"]]
    shared_counts, untied_counts = {}, {}
    for length in cfg["lengths"]:
        shared.forward(one_hot(np.zeros((1, length), dtype=np.int64), SYMBOLS))  # runs at any length
        shared_counts[length] = shared.count_params()
        layer = UntiedRNN(cfg["units"], length)
        layer.build((length, SYMBOLS))
        untied_counts[length] = layer.count_params() + (cfg["units"] + 1)  # + the Dense(1) readout
    per_step = untied_count(1, SYMBOLS, cfg["units"])

    report.setup({"task": "per-step detection of the pattern '1 2' among 4 symbols (see the module docstring)",
                  "training": f"length {TRAIN_LEN}, pattern ending at steps {TRAIN_ENDS[0]}..{TRAIN_ENDS[1] - 1}, "
                              f"{cfg['n_train']} sequences, {cfg['steps']} Adam steps (lr 0.01) of {cfg['batch']}",
                  "units": cfg["units"], "evaluation": f"{cfg['n_eval']} new sequences per length / position",
                  "final training loss": ", ".join(f"{k} {v:.3f}" for k, v in final_loss.items())})
    report.table(["length", "shared RNN parameters", "untied RNN parameters"],
                 [(n, shared_counts[n], untied_counts[n]) for n in cfg["lengths"]],
                 caption=f"Parameters against sequence length (untied: {per_step:,} more per step)")
    report.table(["model"] + [f"length {n}" for n in cfg["lengths"]],
                 [(name, *[_fmt(by_length[name][n]) for n in cfg["lengths"]]) for name in models],
                 caption="Sequence accuracy against length (pattern anywhere)")
    report.table(["model"] + [f"end {p}" for p in positions],
                 [(name, *[_fmt(by_position[name][p]) for p in positions]) for name in models],
                 caption=f"Sequence accuracy at length {TRAIN_LEN} against where the pattern ends "
                         f"(training: steps {TRAIN_ENDS[0]}..{TRAIN_ENDS[1] - 1})")
    report.text(f"The untied network on a longer sequence: `{refusal}`")
    report.plot("parameter_sharing.png", lambda plt: _draw(plt, cfg["lengths"], shared_counts, untied_counts,
                                                          by_length, positions, by_position),
                caption="parameters and accuracy against length; accuracy against position")

    unseen = [p for p in positions if not TRAIN_ENDS[0] <= p < TRAIN_ENDS[1]]
    shared_names = [CELL_LABELS[k] for k in KINDS]
    unseen_shared = {n: float(np.mean([by_position[n][p] for p in unseen])) for n in shared_names}
    unseen_untied = float(np.mean([by_position["untied RNN"][p] for p in unseen]))
    figures = {"shared_counts": shared_counts, "untied_counts": untied_counts, "untied_per_step": per_step,
               "by_length": by_length, "by_position": by_position, "refusal": refusal, "unseen_positions": unseen,
               "unseen_positions_shared": unseen_shared, "unseen_positions_untied": unseen_untied,
               "final_loss": final_loss}
    report.answer(answer(figures))
    report.write(figures)
    return figures


def answer(figures: dict) -> str:
    """The report's answer, from its own figures as its tables show them: the accuracies quoted
    for untrained positions are the lowest and highest cells of the position table (not means
    over positions, which no table shows)."""
    shared_names = [CELL_LABELS[k] for k in KINDS]
    by_length, by_position, unseen = figures["by_length"], figures["by_position"], figures["unseen_positions"]
    longest = max(figures["shared_counts"])
    best_shared = max(shared_names, key=lambda n: by_length[n][longest])
    shared_cells = [by_position[n][p] for n in shared_names for p in unseen]
    untied_cells = [by_position["untied RNN"][p] for p in unseen]
    clear = (by_length[best_shared][longest] >= 0.9
             and max(figures["unseen_positions_shared"].values()) >= figures["unseen_positions_untied"] + 0.5)
    return (f"{'Yes' if clear else 'Only in part'}: with shared weights the parameter count stays "
            f"{figures['shared_counts'][longest]:,} at every length while the untied network's grows by "
            f"{figures['untied_per_step']:,} per step, the best shared model ({best_shared}) scores "
            f"{_fmt(by_length[best_shared][longest])} at length {longest} after training at {TRAIN_LEN}, and at "
            f"the positions never trained on (ends {', '.join(map(str, unseen))}) the shared models score from "
            f"{_fmt(min(shared_cells))} to {_fmt(max(shared_cells))} against {_fmt(min(untied_cells))} to "
            f"{_fmt(max(untied_cells))} for the untied one, which refuses any length past {TRAIN_LEN}.")


def _fmt(acc):
    return "refused" if acc is None else f"{acc:.0%}"


def _draw(plt, lengths, shared_counts, untied_counts, by_length, positions, by_position):
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].plot(lengths, [shared_counts[n] for n in lengths], marker="o", label="shared SimpleRNN")
    axes[0].plot(lengths, [untied_counts[n] for n in lengths], marker="o", label="untied RNN")
    axes[0].set_xlabel("sequence length")
    axes[0].set_ylabel("parameters")
    axes[0].set_title("parameters against length")
    for name, accs in by_length.items():
        pts = [(n, a) for n, a in accs.items() if a is not None]
        axes[1].plot(*zip(*pts), marker="o", label=name)
    axes[1].axvline(TRAIN_LEN, color="grey", ls=":", lw=1)
    axes[1].set_xlabel("sequence length (trained at 10)")
    axes[1].set_ylabel("sequence accuracy")
    axes[1].set_title("accuracy against length")
    for name, accs in by_position.items():
        axes[2].plot(positions, [accs[p] for p in positions], marker="o", label=name)
    axes[2].axvspan(TRAIN_ENDS[0] - 0.5, TRAIN_ENDS[1] - 0.5, color="grey", alpha=0.15, label="trained positions")
    axes[2].set_xlabel("step where the pattern ends")
    axes[2].set_title("accuracy against position")
    grid_and_legend(axes)
    return fig
