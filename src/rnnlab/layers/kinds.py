"""The one table of recurrent cell kinds: ``"rnn"``, ``"lstm"``, ``"gru"``.

Everything that turns a cell name into a class, a gate count or a number of states asks here::

    kind = cell_kind("SimpleRNN")          # "rnn"  (also "LSTM", "gru", an rnnlab layer or cell,
                                           #         or a torch nn.RNN/LSTM/GRU module)
    layer_class("lstm")                    # rnnlab.layers.LSTM
    cell_class("gru")                      # rnnlab.layers.GRUCell
    GATES["lstm"], N_STATES["lstm"]        # 4, 2
"""
from __future__ import annotations

KINDS = ("rnn", "lstm", "gru")
GATES = {"rnn": 1, "lstm": 4, "gru": 3}            # blocks of `units` columns in kernel / recurrent_kernel
N_STATES = {"rnn": 1, "lstm": 2, "gru": 1}         # h, or (h, c) for the LSTM
LAYER_NAMES = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}
CELL_NAMES = {"rnn": "RNNCell", "lstm": "LSTMCell", "gru": "GRUCell"}
_ALIASES = {"rnn": "rnn", "simplernn": "rnn", "simple_rnn": "rnn", "rnncell": "rnn",
            "lstm": "lstm", "lstmcell": "lstm", "gru": "gru", "grucell": "gru"}


def cell_kind(name_or_layer) -> str:
    """``"rnn"``, ``"lstm"`` or ``"gru"`` from a name (any case: "LSTM", "SimpleRNN", "gru_cell"
    is not one), an rnnlab recurrent layer or cell, or a torch module of those kinds.

    Raises ValueError naming the kinds that exist when the name is none of them.
    """
    name = name_or_layer if isinstance(name_or_layer, str) else type(name_or_layer).__name__
    kind = _ALIASES.get(name.lower())
    if kind is None:
        raise ValueError(f"unknown recurrent cell {name!r}: use one of {', '.join(KINDS)} "
                         f"(or SimpleRNN, LSTM, GRU)")
    return kind


def layer_class(name_or_layer):
    """The whole-sequence layer class for a kind: SimpleRNN, LSTM or GRU."""
    from . import recurrent  # imported when asked: recurrent.py may itself use this table

    return getattr(recurrent, LAYER_NAMES[cell_kind(name_or_layer)])


def cell_class(name_or_layer):
    """The one-step cell class for a kind: RNNCell, LSTMCell or GRUCell."""
    from . import cells

    return getattr(cells, CELL_NAMES[cell_kind(name_or_layer)])
