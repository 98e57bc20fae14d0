"""``parameter-count``: the count by formula against the count of the built layer.

Formulas (D inputs, H units; Keras weight layout):

- SimpleRNN: H (D + H + 1)                       (W: D x H, U: H x H, b: H)
- LSTM:      4 H (D + H + 1)                     (four gates i, f, c, o)
- GRU, reset_after=False: 3 H (D + H + 1)        (z, r, h; one bias)
- GRU, reset_after=True:  3 H (D + H + 2)        (an input and a recurrent bias per gate)
- Bidirectional(layer): twice the layer's count; the next layer sees 2 H features
- Dense: (D + 1) U;   stacking: the next layer's D is the previous layer's H

The notes' two Keras models: (20, 6) -> SimpleRNN(16) -> SimpleRNN(32) -> Flatten -> Dense(1)
(368, 1,568, 33) and (21, 1) -> LSTM(16) -> LSTM(32) -> Flatten -> Dense(1) (1,152, 6,272, 673).
"""
from __future__ import annotations

from ..layers import GRU, LSTM, Bidirectional, Dense, Flatten, Input, SimpleRNN
from ..models.base import Sequential
from ..layers.kinds import GATES
from .common import pick
from .report import Report

QUESTION = ("Does the textbook formula give the number of parameters of each recurrent layer, and do "
            "the notes' Keras figures (368, 1,568, 33; 1,152, 6,272, 673) come out?")
SIZES = {"tiny": {}, "default": {}}  # nothing to train: both sizes are the same


def formula(kind: str, inputs: int, units: int, reset_after: bool = True) -> int:
    """G H (D + H + 1), plus G H more biases for a GRU with reset_after (see the module docstring)."""
    gates = GATES[kind]
    extra = gates * units if kind == "gru" and reset_after else 0
    return gates * units * (inputs + units + 1) + extra


def _cases():
    """(label, layer, input features, formula count) for single, bidirectional and stacked layers."""
    cases = []
    for D, H in ((6, 16), (16, 32)):
        cases += [(f"SimpleRNN({H}), D={D}", SimpleRNN(H), D, formula("rnn", D, H)),
                  (f"LSTM({H}), D={D}", LSTM(H), D, formula("lstm", D, H)),
                  (f"GRU({H}, reset_after=True), D={D}", GRU(H), D, formula("gru", D, H)),
                  (f"GRU({H}, reset_after=False), D={D}", GRU(H, reset_after=False), D,
                   formula("gru", D, H, reset_after=False))]
    cases.append(("Bidirectional(LSTM(16)), D=6", Bidirectional(LSTM(16)), 6, 2 * formula("lstm", 6, 16)))
    cases.append(("Bidirectional(GRU(8)), D=6", Bidirectional(GRU(8)), 6, 2 * formula("gru", 6, 8)))
    return cases


def _notes_models():
    """The notes' two models, with the Keras figures they print for each layer."""
    rnn = Sequential([Input((20, 6)), SimpleRNN(16, return_sequences=True), SimpleRNN(32), Flatten(), Dense(1)])
    lstm = Sequential([Input((21, 1)), LSTM(16, return_sequences=True), LSTM(32, return_sequences=True),
                       Flatten(), Dense(1)])
    rnn_formula = [formula("rnn", 6, 16), formula("rnn", 16, 32), (32 + 1) * 1]
    lstm_formula = [formula("lstm", 1, 16), formula("lstm", 16, 32), (21 * 32 + 1) * 1]
    return [("SimpleRNN model (20, 6)", rnn, rnn_formula, [368, 1568, 33]),
            ("LSTM model (21, 1)", lstm, lstm_formula, [1152, 6272, 673])]


def _stacked():
    """Stacked: Bidirectional(LSTM(16)) -> LSTM(8) -> GRU(4) on D = 5; formula per layer."""
    model = Sequential([Bidirectional(LSTM(16, return_sequences=True), name="layer_1"),
                        LSTM(8, return_sequences=True, name="layer_2"), GRU(4, name="layer_3")])
    model.build((None, 5))
    return model, [2 * formula("lstm", 5, 16), formula("lstm", 32, 8), formula("gru", 8, 4)]


def run(out, seed: int = 0, size: str = "tiny") -> dict:
    pick(size, SIZES)
    report = Report(out, "parameter-count", QUESTION, seed, size)
    rows, mismatches = [], []
    for label, layer, D, expected in _cases():
        layer.build((None, D))
        got = layer.count_params()
        rows.append((label, expected, got, "yes" if got == expected else "NO"))
        if got != expected:
            mismatches.append(label)
    model, per_layer = _stacked()
    for layer, expected in zip(model.sublayers, per_layer):
        label = f"stacked: {type(layer).__name__} ({layer.name})"
        got = layer.count_params()
        rows.append((label, expected, got, "yes" if got == expected else "NO"))
        if got != expected:
            mismatches.append(label)
    notes_rows, notes_match = [], True
    for title, notes_model, formulas, keras in _notes_models():
        counted = [layer for layer in notes_model.sublayers if layer.count_params() or isinstance(layer, Dense)]
        for layer, f, k in zip(counted, formulas, keras):
            ok = layer.count_params() == f == k
            notes_match &= ok
            notes_rows.append((title, f"{type(layer).__name__}", f, layer.count_params(), k, "yes" if ok else "NO"))
        notes_rows.append((title, "total", sum(formulas), notes_model.count_params(), sum(keras),
                           "yes" if notes_model.count_params() == sum(keras) else "NO"))
    report.setup({"layers": "built with rnnlab.layers on the given input features; nothing trained",
                  "formula": "G H (D + H + 1) (+ G H for GRU reset_after); see the module docstring"})
    report.table(["layer", "formula", "rnnlab layer", "equal"], rows, caption="Formula against the built layer")
    report.table(["model", "layer", "formula", "rnnlab", "Keras (notes)", "all equal"], notes_rows,
                 caption="The notes' two models")
    report.plot("counts.png", lambda plt: _draw(plt, rows), caption="formula and layer counts (log scale)")
    figures = {"cases": len(rows), "mismatches": mismatches, "notes_match": bool(notes_match),
               "rows": [list(r) for r in rows], "notes": [list(r) for r in notes_rows]}
    if not mismatches and notes_match:
        report.answer(f"Yes: in all {len(rows)} cases the formula equals the layer's count, and the notes' "
                      f"models give 368, 1,568, 33 and 1,152, 6,272, 673 exactly as Keras.")
    else:
        report.answer(f"No: the formula and the layer disagree for {', '.join(mismatches) or 'the notes models'}.")
    report.write(figures)
    return figures


def _draw(plt, rows):
    fig, ax = plt.subplots(figsize=(7, 4))
    labels = [r[0] for r in rows]
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [r[1] for r in rows], height=0.4, label="formula")
    ax.barh([i - 0.2 for i in y], [r[2] for r in rows], height=0.4, label="rnnlab layer")
    ax.set_yticks(list(y))
    ax.set_yticklabels(labels, fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.legend(fontsize=8)
    return fig
