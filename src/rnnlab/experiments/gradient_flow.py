"""``gradient-flow``: how much of the last step's loss reaches each earlier hidden state?

For a loss at the last step only, L = <r, h_{T-1}> with a fixed random r (B, H), this measures
||dL/dh_t|| (norm over batch and units) for every t. dL/dh_t is read as the gradient of the
initial state of the same layer run from step t+1 on, started from the states it had at t
(for the LSTM the state is (h_t, c_t) and the norm is over both). In a tanh RNN it is a product of T-1-t Jacobians
diag(1 - h_k^2) U^T, so it shrinks geometrically when the largest singular value of U is below
1 (vanishing) and can grow when it is above 1 (exploding).

Parts: (1) SimpleRNN, LSTM and GRU at initialisation and after training on the adding problem,
with the largest singular value of each recurrent matrix (per gate block); (2) a SimpleRNN whose
U is an orthogonal matrix scaled to sigma_max 0.5, 1, 1.5, 2; (3) the same SimpleRNN, U scaled to
1.5, trained with plain SGD without and with global-norm clipping: the norm of each update, up to
the step where the training loop stops a diverging run (a NaN/inf loss or one above 10 x the first).
"""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from ..data.generated import adding_problem
from ..diagnostics import recurrent_singular_values
from ..initializers import orthogonal
from ..layers.kinds import KINDS, layer_class
from ..losses import MSE
from ..optim import SGD
from ..train.task import EXPLOSION_FACTOR
from .common import CELL_LABELS, fit, minibatch_rows, pick, recurrent_model, seed_everything
from .report import Report, format_cell, grid_and_legend
from .training import train

QUESTION = ("Does the gradient of a last-step loss vanish (or explode) along time in a recurrent network, "
            "as the largest singular value of the recurrent matrix says, and does global-norm clipping "
            "bound the update of a run that explodes?")
SCALES = (0.5, 1.0, 1.5, 2.0)
SIZES = {
    "tiny": {"units": 16, "length": 20, "steps": 60, "batch": 32, "n_train": 1000, "clip_steps": 40},
    "default": {"units": 32, "length": 50, "steps": 400, "batch": 32, "n_train": 5000, "clip_steps": 150},
}
CLIP, SGD_LR, EXPLODE_SCALE = 1.0, 0.1, 1.5


def hidden_grad_norms(kind: str, weights, x, units: int, seed: int = 0) -> np.ndarray:
    """||dL/dh_t|| for t = 0..T-1, L = <r, h_{T-1}>, for a layer of ``kind`` with ``weights``."""
    layer = layer_class(kind)(units, return_state=True)
    layer.build(tuple(x.shape[1:]))
    layer.set_weights(weights)
    B, T, _ = x.shape
    r = backend.asarray(np.random.default_rng(seed).standard_normal((B, units)))
    norms = np.empty(T)
    norms[T - 1] = float(np.linalg.norm(backend.to_numpy(r)))
    for t in range(T - 1):
        states = layer.forward(x[:, :t + 1])[1:]
        layer.forward(x[:, t + 1:], initial_state=list(states))
        layer.backward(r)
        norms[t] = math.sqrt(sum(float(np.sum(backend.to_numpy(d).astype(np.float64) ** 2))
                                 for d in layer.dinitial_state))
    return norms


def _top_singular(layer) -> str:
    return ", ".join(f"{gate} {values[0]:.2f}" for gate, values in recurrent_singular_values(layer).items())


def _scaled_rnn(units, length, seed, scale):
    model = recurrent_model("rnn", units, 1, seed)
    model.build((length, 2))
    layer = model.sublayers[0]
    kernel, _, bias = layer.get_weights()
    u = scale * orthogonal((units, units), rng=np.random.default_rng(seed + 7))
    layer.set_weights([kernel, u, bias])
    return model


def run(out, seed: int = 0, size: str = "tiny") -> dict:
    cfg = pick(size, SIZES)
    rng = seed_everything(seed)
    report = Report(out, "gradient-flow", QUESTION, seed, size)
    H, T = cfg["units"], cfg["length"]
    x, y = adding_problem(cfg["n_train"], T, seed)
    probe = x[:16]
    ratio = lambda n: float(n[0] / n[-1])  # noqa: E731 - ||dL/dh_0|| / ||dL/dh_{T-1}||

    # (1) the three cells, at initialisation and after training
    curves, cell_rows = {}, []
    for kind in KINDS:
        model = recurrent_model(kind, H, 1, seed)
        model.build((T, 2))
        layer = model.sublayers[0]
        init_norms = hidden_grad_norms(kind, layer.get_weights(), probe, H, seed)
        init_sv = _top_singular(layer)
        history = fit(model, MSE(), (x, y), np.random.default_rng(seed + 1), cfg["batch"], cfg["steps"])
        trained_norms = hidden_grad_norms(kind, layer.get_weights(), probe, H, seed)
        name = CELL_LABELS[kind]
        curves[f"{name}, initial"] = init_norms
        curves[f"{name}, trained"] = trained_norms
        cell_rows.append((name, init_sv, ratio(init_norms), _top_singular(layer), ratio(trained_norms),
                          float(np.mean([h["loss"] for h in history[-10:]]))))

    # (2) the recurrent matrix scaled
    scaled, scale_rows = {}, []
    for scale in SCALES:
        layer = _scaled_rnn(H, T, seed, scale).sublayers[0]
        norms = hidden_grad_norms("rnn", layer.get_weights(), probe, H, seed)
        scaled[scale] = norms
        scale_rows.append((scale, recurrent_singular_values(layer)["h"][0], ratio(norms),
                           "shrinks (vanishing)" if norms[0] < norms[-1] else "grows (exploding)"))

    # (3) an exploding run without and with clipping
    runs = {}
    for clip in (None, CLIP):
        model = _scaled_rnn(H, T, seed, EXPLODE_SCALE)
        rows = minibatch_rows(np.random.default_rng(seed + 3), len(x), cfg["batch"], cfg["clip_steps"])
        runs[clip] = train(model, rows, MSE(), SGD(lr=SGD_LR), clip=clip, measure_updates=True, arrays=(x, y))
    clip_rows = []
    for clip, history in runs.items():
        updates = [h["update_norm"] for h in history if math.isfinite(h.get("update_norm", math.nan))]
        clip_rows.append(("none" if clip is None else f"global norm {clip}", len(history),
                          "yes" if history[-1].get("diverged") or not math.isfinite(history[-1]["loss"]) else "no",
                          max(h["grad_norm"] for h in history if math.isfinite(h["grad_norm"])) if updates else math.nan,
                          max(updates) if updates else math.nan, history[-1]["loss"]))

    report.setup({"task": f"adding problem, length {T}, {cfg['n_train']} sequences",
                  "models": f"SimpleRNN / LSTM / GRU ({H} units) -> Dense(1), MSE, Adam lr 0.01, "
                            f"{cfg['steps']} steps of {cfg['batch']}, clip 1",
                  "probe": "16 sequences; L = <r, h_T-1>, r fixed",
                  "exploding run": f"SimpleRNN with U = {EXPLODE_SCALE} x orthogonal, SGD lr {SGD_LR}, "
                                   f"{cfg['clip_steps']} steps; clipping at global norm {CLIP}",
                  "diverged": f"the training loop stopped the run: its loss became NaN or inf, or exceeded "
                              f"{EXPLOSION_FACTOR:g} x max(first loss, 1)"})
    report.table(["cell", "sigma_max(U) initial", "norm dL/dh_0 / norm dL/dh_T-1, initial",
                  "sigma_max(U) trained", "ratio trained", "final loss"], cell_rows,
                 caption="The three cells, at initialisation and after training")
    report.table(["scale of U", "sigma_max(U)", "norm dL/dh_0 / norm dL/dh_T-1", "along t"], scale_rows,
                 caption="SimpleRNN with the recurrent matrix scaled")
    report.table(["clipping", "steps run", "diverged", "largest gradient norm", "largest update norm", "last loss"],
                 clip_rows, caption=f"SimpleRNN, U scaled to {EXPLODE_SCALE}, SGD lr {SGD_LR}: without and with clipping "
                                    f"(an update is at most lr x clip = {SGD_LR * CLIP:g} with clipping)")
    report.plot("gradient_flow.png", lambda plt: _draw(plt, curves, scaled, runs), caption=
                "norm of dL/dh_t against t (log scale); update norms without and with clipping")

    contractive, expansive = scaled[SCALES[0]], scaled[SCALES[-1]]
    clipped = [h["update_norm"] for h in runs[CLIP]]
    unclipped_diverged = clip_rows[0][2] == "yes"
    figures = {"cells": {r[0]: {"init_ratio": r[2], "trained_ratio": r[4], "final_loss": r[5]} for r in cell_rows},
               "scaled": {str(s): scaled[s].tolist() for s in SCALES},
               "contractive_ratio": ratio(contractive), "expansive_ratio": ratio(expansive),
               "clipped_max_update": max(clipped), "update_bound": SGD_LR * CLIP,
               "unclipped_max_update": clip_rows[0][4], "unclipped_diverged": unclipped_diverged,
               "clipped_diverged": clip_rows[1][2] == "yes"}
    report.answer(answer(figures))
    report.write(figures)
    return figures


def answer(figures: dict) -> str:
    """The report's answer, from its own figures as its tables show them: the scaled SimpleRNN,
    the *trained* cells (the lesson is what training leaves; at initialisation an orthogonal
    SimpleRNN can pass more than an LSTM whose forget gates start half shut), and clipping."""
    contractive, expansive = figures["contractive_ratio"], figures["expansive_ratio"]
    cells = figures["cells"]
    rnn, lstm, gru = (cells[CELL_LABELS[k]]["trained_ratio"] for k in ("rnn", "lstm", "gru"))
    if min(lstm, gru) > rnn:
        cell_text = (f"after training the LSTM passes {format_cell(lstm)} of it back to step 0 and the GRU "
                     f"{format_cell(gru)}, against {format_cell(rnn)} for the SimpleRNN")
    else:
        cell_text = (f"after training the SimpleRNN passes {format_cell(rnn)} of it back to step 0, the LSTM "
                     f"{format_cell(lstm)} and the GRU {format_cell(gru)}: in this run the gates kept no more of "
                     f"it than the SimpleRNN")
    unclipped = ("diverges" if figures["unclipped_diverged"]
                 else f"reaches updates of {format_cell(figures['unclipped_max_update'])}")
    verdict = "Yes" if contractive < 1 < expansive else "Not in this run"
    return (f"{verdict}: with sigma_max(U) = {SCALES[0]} the gradient reaching step 0 is {format_cell(contractive)} "
            f"times the last step's and with {SCALES[-1]} it is {format_cell(expansive)} times; {cell_text}; and "
            f"the run that {unclipped} without clipping never takes an update above "
            f"{format_cell(figures['clipped_max_update'])} (lr x clip = {figures['update_bound']:g}) with it.")


def _draw(plt, curves, scaled, runs):
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for name, norms in curves.items():
        axes[0].semilogy(norms, ls="-" if "trained" in name else "--", label=name)
    axes[0].set_title("RNN / LSTM / GRU: initial (--) and trained (-)")
    for scale, norms in scaled.items():
        axes[1].semilogy(norms, label=f"sigma_max(U) = {scale}")
    axes[1].set_title("SimpleRNN, recurrent matrix scaled")
    for ax in axes[:2]:
        ax.set_xlabel("step t (loss at the last step)")
        ax.set_ylabel("norm of dL/dh_t")
    for clip, history in runs.items():
        axes[2].semilogy([h["update_norm"] for h in history if "update_norm" in h],
                         label="no clipping" if clip is None else f"clip {clip}")
    axes[2].set_xlabel("training step")
    axes[2].set_ylabel("update norm")
    axes[2].set_title("SGD on an exploding SimpleRNN")
    grid_and_legend(axes)
    return fig
