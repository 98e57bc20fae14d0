"""Whole rnnlab models as equivalent ``torch.nn.Module``s, and back.

    from rnnlab.interop import to_torch, from_torch
    module = to_torch(model)          # LanguageModel or Sequential -> nn.Module, weights copied
    logits, state = module(ids)       # a language model; a Sequential's module returns y
    model2 = from_torch(module)       # back (e.g. after training in PyTorch): same outputs

The module records the rnnlab architecture in ``module.rnnlab_config`` (the JSON-serialisable
``{"class_name", "config"}`` that ``rnnlab.load`` uses), so ``from_torch(state_dict,
config=...)`` also rebuilds a model from a saved ``state_dict`` and that config. Its dtype is
rnnlab's ``floatx()`` at conversion time (float64 in the parity tests: outputs agree to 1e-9).

What the modules hold (names of their ``state_dict``):

- ``TorchLanguageModel``: ``embedding.weight`` (V, E); ``rnn.*``: one ``nn.LSTM/GRU/RNN`` with
  ``num_layers`` layers, ``batch_first=True`` and rnnlab's between-layer dropout; then the
  output layer ``output.weight`` (V, H), ``output.bias`` (V,), or with tied weights only
  ``output_bias`` (V,) (logits = h E^T + b). ``forward(ids, state=None) -> (logits, state)``,
  state = (h, c) of shape (layers, B, H) each for an LSTM, h for GRU and RNN (PyTorch's
  convention), so a loop passes the state back in as rnnlab's carried state does.
- ``TorchSequential``: ``layers.<i>`` in rnnlab's order: ``nn.Embedding``, ``Recurrent`` (an
  ``nn.LSTM/GRU/RNN`` in ``.rnn``, one layer, bidirectional for a ``Bidirectional``, with
  rnnlab's ``return_sequences``, ``go_backwards`` and ``merge_mode`` applied around it),
  ``Dense`` (``.linear`` + activation), ``nn.Flatten``, ``nn.Dropout``.

The recurrent weights go through ``layout.keras_to_torch`` (gate orders: LSTM the same, GRU
z, r, h -> r, z, n). Refused, by name, with ``UnsupportedError``: GRU(reset_after=False) (no
PyTorch equivalent), SimpleRNN with a sigmoid activation, masks (``Embedding(mask_zero=True)``),
``stateful`` layers, Dropout with a ``noise_shape`` and variational dropout in a language model
(PyTorch's dropout draws a mask per element), and any other layer.
"""
from __future__ import annotations

import functools

import numpy as np

from . import UnsupportedError, require
from .layout import keras_to_torch, torch_to_keras


def lm_output_layer(model):
    """The Dense output layer of a LanguageModel (None when its weights are tied): the one
    place that knows the attribute's name."""
    return model.output


def _torch():
    return require("torch", "converting to or from PyTorch")


def _dtype(torch):
    from ..backend import floatx

    return torch.float64 if floatx() == "float64" else torch.float32


def _tensor(torch, array, dtype):
    return torch.from_numpy(np.ascontiguousarray(np.asarray(array))).to(dtype)


@functools.lru_cache(maxsize=None)
def _classes():
    """The torch module classes, defined on first use so that torch loads only when needed."""
    torch = _torch()
    nn = torch.nn
    modules = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}

    def make_rnn(kind, input_size, hidden, layers=1, bidirectional=False, dropout=0.0, activation="tanh"):
        kwargs = {"nonlinearity": activation} if kind == "rnn" else {}
        return modules[kind](input_size, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                             dropout=dropout if layers > 1 else 0.0, **kwargs)

    class TorchLanguageModel(nn.Module):
        """ids (B, T) -> Embedding -> Dropout -> stacked RNN -> Dropout -> output; see module doc."""

        def __init__(self, vocab_size, emb, hidden, layers, cell, dropout=0.0, tie_weights=False):
            super().__init__()
            self.cell, self.tie_weights = cell, tie_weights
            self.embedding = nn.Embedding(vocab_size, emb)
            self.rnn = make_rnn(cell, emb, hidden, layers, dropout=dropout)
            self.drop = nn.Dropout(dropout)
            if tie_weights:
                self.output_bias = nn.Parameter(torch.zeros(vocab_size))
            else:
                self.output = nn.Linear(hidden, vocab_size)

        def forward(self, ids, state=None):
            y, state = self.rnn(self.drop(self.embedding(ids)), state)
            y = self.drop(y)
            if self.tie_weights:
                return y @ self.embedding.weight.T + self.output_bias, state
            return self.output(y), state

    class Recurrent(nn.Module):
        """One rnnlab recurrent layer (or Bidirectional) around a one-layer torch RNN."""

        def __init__(self, kind, input_size, units, bidirectional, return_sequences, go_backwards, merge_mode,
                     activation="tanh"):
            super().__init__()
            self.kind, self.bidirectional, self.units = kind, bidirectional, units
            self.return_sequences, self.go_backwards, self.merge_mode = return_sequences, go_backwards, merge_mode
            self.rnn = make_rnn(kind, input_size, units, bidirectional=bidirectional, activation=activation)

        def forward(self, x):
            if self.go_backwards:  # rnnlab/Keras: read backwards, outputs in reading order
                x = x.flip(1)
            y, state = self.rnn(x)
            h_n = state[0] if self.kind == "lstm" else state   # (directions, B, H)
            if not self.bidirectional:
                return y if self.return_sequences else h_n[0]
            if self.return_sequences:
                forward, backward = y[..., :self.units], y[..., self.units:]
            else:
                forward, backward = h_n[0], h_n[1]
            if self.merge_mode == "concat":
                return torch.cat([forward, backward], dim=-1)
            if self.merge_mode == "sum":
                return forward + backward
            if self.merge_mode == "ave":
                return 0.5 * (forward + backward)
            return forward * backward

    class Dense(nn.Module):
        def __init__(self, input_size, units, activation, use_bias):
            super().__init__()
            self.linear = nn.Linear(input_size, units, bias=use_bias)
            self.activation = activation or "linear"

        def forward(self, x):
            y = self.linear(x)
            if self.activation == "tanh":
                return torch.tanh(y)
            if self.activation == "sigmoid":
                return torch.sigmoid(y)
            if self.activation == "relu":
                return torch.relu(y)
            if self.activation == "softmax":
                return torch.softmax(y, dim=-1)
            return y

    class TorchSequential(nn.Module):
        def __init__(self, layers):
            super().__init__()
            self.layers = nn.ModuleList(layers)

        def forward(self, x):
            for layer in self.layers:
                x = layer(x)
            return x

    return {"TorchLanguageModel": TorchLanguageModel, "Recurrent": Recurrent, "Dense": Dense,
            "TorchSequential": TorchSequential}


# ---- rnnlab -> torch -------------------------------------------------------------------------------


def to_torch(model):
    """The ``torch.nn.Module`` computing what ``model`` (a built ``LanguageModel`` or
    ``Sequential``) computes, its weights copied; ``module.rnnlab_config`` records the model."""
    from ..layers.base import layer_to_dict
    from ..models.base import Sequential
    from ..models.lm import LanguageModel

    torch = _torch()
    if isinstance(model, LanguageModel):
        module = _lm_to_torch(model, torch)
    elif isinstance(model, Sequential):
        module = _sequential_to_torch(model, torch)
    else:
        raise UnsupportedError(f"to_torch: {type(model).__name__} is not supported (LanguageModel or Sequential)")
    module.rnnlab_config = layer_to_dict(model)
    return module.eval() if not model.training else module


def _load(module, state: dict, torch):
    dtype = _dtype(torch)
    module.to(dtype)
    missing = set(module.state_dict()) - set(state)
    if missing:  # a bug here, not a user's mistake: every parameter must be written
        raise AssertionError(f"to_torch: no value for {sorted(missing)}")
    module.load_state_dict({k: _tensor(torch, v, dtype) for k, v in state.items()})


def _check_recurrent(layer, where):
    from ..layers.kinds import cell_kind

    kind = cell_kind(layer)
    if kind == "gru" and not layer.reset_after:
        raise UnsupportedError(f"{where}: {layer.describe()} has reset_after=False, which has no PyTorch "
                               f"equivalent (nn.GRU is GRU(reset_after=True))")
    if kind == "rnn" and layer.activation not in ("tanh", "relu"):
        raise UnsupportedError(f"{where}: {layer.describe()} has activation={layer.activation!r}; nn.RNN has "
                               f"tanh or relu")
    if layer.stateful:
        raise UnsupportedError(f"{where}: {layer.describe()} is stateful; carry the state yourself in PyTorch")
    return kind


def _lm_to_torch(model, torch):
    where = "to_torch"
    if model.variational:
        raise UnsupportedError(f"{where}: {model.describe()} uses variational=True dropout (one mask per "
                               f"sequence); PyTorch's nn.Dropout draws one per element")
    for rnn in model.rnns:
        _check_recurrent(rnn, where)
    module = _classes()["TorchLanguageModel"](model.vocab_size, model.emb, model.hidden, model.layers,
                                              _kind(model.rnns[0]), model.dropout,
                                              model.tie_weights)
    state = {"embedding.weight": model.embedding.get_weights()[0]}
    for k, rnn in enumerate(model.rnns):
        state.update({f"rnn.{n}": v for n, v in keras_to_torch(_kind(rnn), rnn.get_weights()[:3], layer=k).items()})
    output = lm_output_layer(model)
    if output is None:
        state["output_bias"] = _host(model.output_bias)
    else:
        kernel, bias = output.get_weights()
        state.update({"output.weight": kernel.T, "output.bias": bias})
    _load(module, state, torch)
    return module


def _kind(layer):
    from ..layers.kinds import cell_kind

    return cell_kind(layer)


def _host(a):
    from ..backend import to_numpy

    return to_numpy(a)


def _sequential_to_torch(model, torch):
    from ..layers import core
    from ..layers.bidirectional import Bidirectional
    from ..layers.recurrent import _Recurrent

    where, classes = "to_torch", _classes()
    nn = torch.nn
    if not model.built:
        raise ValueError(f"{where}: {model.describe()} is not built: give it an Input layer or run forward once")
    modules, state = [], {}
    shape = tuple(model.input_shape)
    for layer in model.sublayers:
        i = len(modules)
        out_shape = layer.compute_output_shape(shape)
        if isinstance(layer, core.Input):
            pass
        elif isinstance(layer, core.Embedding):
            if layer.mask_zero:
                raise UnsupportedError(f"{where}: {layer.describe()} has mask_zero=True; the PyTorch module "
                                       f"carries no masks (pack the sequences yourself)")
            modules.append(nn.Embedding(layer.input_dim, layer.output_dim))
            state[f"layers.{i}.weight"] = layer.get_weights()[0]
        elif isinstance(layer, (_Recurrent, Bidirectional)):
            bidirectional = isinstance(layer, Bidirectional)
            first = layer.forward_layer if bidirectional else layer
            kind = _check_recurrent(first, where)
            if bidirectional and first.go_backwards:
                raise UnsupportedError(f"{where}: {layer.describe()} wraps a go_backwards layer")
            modules.append(classes["Recurrent"](kind, int(shape[-1]), first.units, bidirectional,
                                                first.return_sequences, first.go_backwards and not bidirectional,
                                                getattr(layer, "merge_mode", None),
                                                getattr(first, "activation", "tanh")))
            if first.return_state:
                raise UnsupportedError(f"{where}: {layer.describe()} has return_state=True")
            directions = [(layer.forward_layer, False), (layer.backward_layer, True)] if bidirectional \
                else [(layer, False)]
            for sub, reverse in directions:
                converted = keras_to_torch(kind, sub.get_weights(), layer=0, reverse=reverse)
                state.update({f"layers.{i}.rnn.{n}": v for n, v in converted.items()})
        elif isinstance(layer, core.Dense):
            weights = layer.get_weights()
            modules.append(classes["Dense"](int(shape[-1]), layer.units, layer.activation, layer.use_bias))
            state[f"layers.{i}.linear.weight"] = weights[0].T
            if layer.use_bias:
                state[f"layers.{i}.linear.bias"] = weights[1]
        elif isinstance(layer, core.Flatten):
            modules.append(nn.Flatten(1))
        elif isinstance(layer, core.Dropout):
            if layer.noise_shape is not None:
                raise UnsupportedError(f"{where}: {layer.describe()} has noise_shape={layer.noise_shape}; "
                                       f"nn.Dropout draws one mask per element")
            modules.append(nn.Dropout(layer.rate))
        else:
            raise UnsupportedError(f"{where}: {layer.describe()} ({type(layer).__name__}) has no PyTorch "
                                   f"counterpart here (Embedding, SimpleRNN, LSTM, GRU, Bidirectional, Dense, "
                                   f"Flatten, Dropout)")
        shape = out_shape
    module = classes["TorchSequential"](modules)
    _load(module, state, torch)
    return module


# ---- torch -> rnnlab -------------------------------------------------------------------------------


def from_torch(module, config=None):
    """The rnnlab model of a module made by ``to_torch`` (its weights, possibly trained in
    PyTorch, copied in); or of a ``state_dict`` with the ``config`` that ``to_torch`` recorded
    (``module.rnnlab_config``)."""
    from ..models.base import Sequential
    from ..models.lm import LanguageModel
    from ..checkpoint import model_from_config

    if config is None:
        config = getattr(module, "rnnlab_config", None)
        if config is None:
            raise ValueError(f"from_torch: this {type(module).__name__} was not made by rnnlab's to_torch (no "
                             f"rnnlab_config); pass config= with the model's {{'class_name', 'config'}}")
    state = module.state_dict() if hasattr(module, "state_dict") else dict(module)
    state = {k: _host(v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in state.items()}
    model = model_from_config(config)
    if isinstance(model, LanguageModel):
        _lm_from_state(model, state)
    elif isinstance(model, Sequential):
        _sequential_from_state(model, state)
    else:
        raise UnsupportedError(f"from_torch: {type(model).__name__} is not supported (LanguageModel or Sequential)")
    return model


def _get(state, name):
    if name not in state:
        raise KeyError(f"from_torch: the state dict has no {name!r} (has {sorted(state)[:8]}...)")
    return state[name]


def _sub(state, prefix):
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


def _lm_from_state(model, state):
    model.embedding.set_weights([_get(state, "embedding.weight")])
    rnn_state = _sub(state, "rnn.")
    for k, rnn in enumerate(model.rnns):
        rnn.set_weights(torch_to_keras(_kind(rnn), rnn_state, layer=k))
    output = lm_output_layer(model)
    if output is None:
        model.output_bias[...] = _backend_array(_get(state, "output_bias"), model.output_bias.dtype)
    else:
        output.set_weights([_get(state, "output.weight").T, _get(state, "output.bias")])


def _backend_array(a, dtype):
    from .. import backend

    return backend.xp.asarray(a, dtype=dtype)


def _sequential_from_state(model, state):
    from ..layers import core
    from ..layers.bidirectional import Bidirectional
    from ..layers.recurrent import _Recurrent

    i = 0
    for layer in model.sublayers:
        if isinstance(layer, core.Input):
            continue
        prefix = f"layers.{i}."
        if isinstance(layer, core.Embedding):
            layer.set_weights([_get(state, prefix + "weight")])
        elif isinstance(layer, Bidirectional):
            rnn_state = _sub(state, prefix + "rnn.")
            kind = _kind(layer.forward_layer)
            layer.forward_layer.set_weights(torch_to_keras(kind, rnn_state, layer=0))
            layer.backward_layer.set_weights(torch_to_keras(kind, rnn_state, layer=0, reverse=True))
        elif isinstance(layer, _Recurrent):
            layer.set_weights(torch_to_keras(_kind(layer), _sub(state, prefix + "rnn."), layer=0))
        elif isinstance(layer, core.Dense):
            weights = [_get(state, prefix + "linear.weight").T]
            if layer.use_bias:
                weights.append(_get(state, prefix + "linear.bias"))
            layer.set_weights(weights)
        i += 1
