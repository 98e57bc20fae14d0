"""Keras 3 model files -> the equivalent rnnlab ``Sequential``, weights included.

    from rnnlab.interop import load_keras
    model = load_keras("model.keras")                           # config.json + model.weights.h5
    model = load_keras("model.weights.h5", config="model.json")  # weights + model.to_json()

A ``.keras`` file is a zip holding ``config.json`` (the architecture) and ``model.weights.h5``
(the variables). The config is parsed here as plain JSON, field by field: nothing in it is
imported or executed, so a file from anywhere is safe to read. The weights are read with h5py
(the optional ``interop`` extra), where Keras 3 stores each layer's variables as
``layers/<key>/vars/<i>`` and a recurrent layer's as ``layers/<key>/cell/vars/<i>`` (a
Bidirectional's under ``forward_layer`` and ``backward_layer``); the key is the layer's class
in snake case, numbered per class in order (``lstm``, ``lstm_1``), not the layer's name.

Supported: a ``Sequential`` of InputLayer, Embedding, SimpleRNN, LSTM, GRU (``reset_after``
True or False), Bidirectional (every merge mode but None), Dense, Flatten, Dropout. Keras and
rnnlab share the weight layout (kernel (D, G*H), recurrent_kernel (H, G*H), gates LSTM i, f, c,
o and GRU z, r, h), so the arrays are copied as they are. Anything else (another layer, another
activation, recurrent dropout, regularizers, constraints, a Functional model) raises
``UnsupportedError`` naming the layer and the option: a model loaded here computes what the
Keras model computes, or is not loaded.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np

from . import UnsupportedError, require

SUPPORTED = ("InputLayer", "Embedding", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "Dense", "Flatten",
             "Dropout")
RECURRENT = ("SimpleRNN", "LSTM", "GRU")
DENSE_ACTIVATIONS = ("linear", "tanh", "sigmoid", "relu", "softmax")
# options of a recurrent layer that change training only, or nothing, and that rnnlab takes as given
_TRAINING_ONLY = ("kernel_initializer", "recurrent_initializer", "bias_initializer", "unit_forget_bias", "seed")


def read_keras_file(path, config=None) -> tuple[dict, "object"]:
    """(model config dict, open h5py File of the weights) from a ``.keras`` zip or a
    ``.weights.h5`` file (``config``: a dict, a JSON file from ``model.to_json()``, or the
    ``config.json`` of a ``.keras`` file)."""
    h5py = require("h5py", "reading Keras weights")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            missing = {"config.json", "model.weights.h5"} - names
            if missing:
                raise ValueError(f"{path}: not a Keras 3 .keras file (no {', '.join(sorted(missing))} inside)")
            spec = _parse_json(archive.read("config.json"), f"{path}:config.json")
            weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
        return spec, weights
    if config is None:
        raise ValueError(f"{path}: a weights file holds no architecture: pass config= (a JSON file written "
                         f"from model.to_json(), or a dict)")
    if isinstance(config, (str, Path)):
        config = _parse_json(Path(config).read_bytes(), str(config))
    try:
        weights = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not an HDF5 weights file ({err})") from err
    return config, weights


def _parse_json(data: bytes, where: str) -> dict:
    try:
        spec = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{where}: not valid JSON: {err}") from err
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise ValueError(f"{where}: expected a Keras model config {{\"class_name\": ..., \"config\": ...}}")
    return spec


def load_keras(path, config=None):
    """The rnnlab ``Sequential`` equivalent to a Keras 3 model file, its weights loaded.

    ``path``: a ``.keras`` file, or a ``.weights.h5`` file with ``config`` (see
    ``read_keras_file``). Raises ``UnsupportedError`` naming any layer or option with no rnnlab
    equivalent, ``ValueError`` naming the file for a damaged or foreign one.
    """
    spec, weights = read_keras_file(path, config)
    try:
        return model_from_keras(spec, weights, where=str(path))
    finally:
        weights.close()


def model_from_keras(spec: dict, weights, where: str = "Keras model"):
    """An rnnlab ``Sequential`` from a parsed Keras config and an h5py group of its weights."""
    from ..layers.core import Input
    from ..models.base import Sequential

    if spec.get("class_name") != "Sequential":
        raise UnsupportedError(f"{where}: the model is a Keras {spec.get('class_name')!r}; only Sequential "
                               f"models are supported (a Functional chain: rebuild it as keras.Sequential)")
    cfg = spec.get("config") or {}
    layer_specs = cfg.get("layers")
    if not isinstance(layer_specs, list):
        raise ValueError(f"{where}: the Sequential config has no list of layers")
    layers, input_shape = [], None
    for entry in layer_specs:
        name = entry.get("class_name")
        if name not in SUPPORTED:
            lname = (entry.get("config") or {}).get("name", "?")
            raise UnsupportedError(f"{where}: layer {lname!r} is a Keras {name}, which rnnlab does not have "
                                   f"(supported: {', '.join(SUPPORTED)})")
        if name == "InputLayer":
            shape = entry["config"].get("batch_shape") or entry["config"].get("batch_input_shape")
            input_shape = tuple(shape[1:])
            continue
        layers.append(_convert(entry, where))
    if input_shape is None and cfg.get("build_input_shape"):
        input_shape = tuple(cfg["build_input_shape"][1:])
    if input_shape is None:
        raise ValueError(f"{where}: the model has no input shape (no InputLayer, never built): "
                         f"build it in Keras first")
    _check_masking(layers, layer_specs, where)
    model = Sequential([Input(input_shape)] + [layer for layer, _ in layers], name=cfg.get("name"))
    for (layer, entry), key in zip(layers, _weight_keys([entry["class_name"] for _, entry in layers])):
        _load_weights(layer, entry, weights, where, key)
    model.eval()
    return model


def _option(config, key, allowed, where, lname, cls):
    value = config.get(key)
    if value not in allowed:
        raise UnsupportedError(f"{where}: layer {lname!r} ({cls}) has {key}={value!r}; rnnlab supports "
                               f"{' or '.join(repr(a) for a in allowed)}")


def _no_training_extras(config, where, lname, cls):
    for key in ("dropout", "recurrent_dropout"):
        if float(config.get(key) or 0.0) != 0.0:
            raise UnsupportedError(f"{where}: layer {lname!r} ({cls}) has {key}={config[key]}; rnnlab's "
                                   f"recurrent layers have no {key} (put a Dropout layer between layers)")
    for key, value in config.items():
        if key.endswith(("_regularizer", "_constraint")) and value is not None:
            raise UnsupportedError(f"{where}: layer {lname!r} ({cls}) has {key}; rnnlab has none")


def _recurrent(entry, where):
    from ..layers.kinds import layer_class

    cls, config = entry["class_name"], entry["config"]
    lname = config.get("name", "?")
    _no_training_extras(config, where, lname, cls)
    if cls == "SimpleRNN":
        _option(config, "activation", ("tanh", "relu", "sigmoid"), where, lname, cls)
    else:
        _option(config, "activation", ("tanh",), where, lname, cls)
        _option(config, "recurrent_activation", ("sigmoid",), where, lname, cls)
    _option(config, "return_state", (False, None), where, lname, cls)
    kwargs = {"return_sequences": bool(config.get("return_sequences")),
              "go_backwards": bool(config.get("go_backwards")), "stateful": bool(config.get("stateful")),
              "name": lname}
    if cls == "SimpleRNN":
        kwargs["activation"] = config.get("activation", "tanh")
    if cls == "GRU":
        kwargs["reset_after"] = bool(config.get("reset_after", True))
    return layer_class(cls)(int(config["units"]), **kwargs)


def _convert(entry, where):
    """(rnnlab layer, Keras entry) for one supported Keras layer config."""
    from ..layers import core
    from ..layers.bidirectional import Bidirectional

    cls, config = entry["class_name"], entry.get("config") or {}
    lname = config.get("name", "?")
    if cls in RECURRENT:
        return _recurrent(entry, where), entry
    if cls == "Bidirectional":
        inner, back = config["layer"], config.get("backward_layer")
        if inner.get("class_name") not in RECURRENT:
            raise UnsupportedError(f"{where}: Bidirectional {lname!r} wraps a Keras {inner.get('class_name')}")
        if config.get("merge_mode") not in ("concat", "sum", "ave", "mul"):
            raise UnsupportedError(f"{where}: Bidirectional {lname!r} has merge_mode={config.get('merge_mode')!r}; "
                                   f"a Sequential needs concat, sum, ave or mul")
        if back is not None:
            same = {k: v for k, v in back["config"].items() if k not in ("name", "go_backwards") + _TRAINING_ONLY}
            ref = {k: v for k, v in inner["config"].items() if k not in ("name", "go_backwards") + _TRAINING_ONLY}
            if back.get("class_name") != inner.get("class_name") or same != ref:
                raise UnsupportedError(f"{where}: Bidirectional {lname!r} has a backward layer unlike its forward "
                                       f"layer; rnnlab's Bidirectional runs a copy of the forward layer backwards")
        return Bidirectional(_recurrent(inner, where), merge_mode=config["merge_mode"], name=lname), entry
    if cls == "Embedding":
        for key in ("embeddings_regularizer", "embeddings_constraint", "activity_regularizer"):
            if config.get(key) is not None:
                raise UnsupportedError(f"{where}: layer {lname!r} (Embedding) has {key}; rnnlab has none")
        return core.Embedding(int(config["input_dim"]), int(config["output_dim"]),
                              mask_zero=bool(config.get("mask_zero")), name=lname), entry
    if cls == "Dense":
        _option(config, "activation", DENSE_ACTIVATIONS, where, lname, cls)
        for key, value in config.items():
            if key.endswith(("_regularizer", "_constraint")) and value is not None:
                raise UnsupportedError(f"{where}: layer {lname!r} (Dense) has {key}; rnnlab has none")
        return core.Dense(int(config["units"]), activation=config.get("activation"),
                          use_bias=bool(config.get("use_bias", True)), name=lname), entry
    if cls == "Flatten":
        if config.get("data_format") not in (None, "channels_last"):
            raise UnsupportedError(f"{where}: Flatten {lname!r} has data_format={config['data_format']!r}")
        return core.Flatten(name=lname), entry
    noise = config.get("noise_shape")
    return core.Dropout(float(config["rate"]), noise_shape=tuple(noise) if noise else None, name=lname), entry


def _check_masking(layers, layer_specs, where):
    """Keras's recurrent layers repeat the previous output at masked steps
    (``zero_output_for_mask=False``), rnnlab's output zeros: the two differ only where a masked
    sequence leaves the last recurrent layer with ``return_sequences``. Refuse that one case."""
    from ..layers.core import Embedding

    if not any(isinstance(layer, Embedding) and layer.mask_zero for layer, _ in layers):
        return
    recurrent = [(layer, entry) for layer, entry in layers if entry["class_name"] in RECURRENT + ("Bidirectional",)]
    if not recurrent:
        return
    layer, entry = recurrent[-1]
    config = entry["config"]
    inner = config["layer"]["config"] if entry["class_name"] == "Bidirectional" else config
    if inner.get("return_sequences") and not (entry["class_name"] == "Bidirectional"
                                              or inner.get("zero_output_for_mask")):
        raise UnsupportedError(f"{where}: layer {config.get('name')!r} returns sequences under a mask_zero mask "
                               f"with zero_output_for_mask=False (Keras repeats the last output at padded steps, "
                               f"rnnlab writes zeros): set zero_output_for_mask=True in Keras")


# Keras 3 names a Sequential's layer groups in the weights file after their classes, in snake
# case, numbered per class in order ("gru", "gru_1", ...), whatever the layers' own names
_SNAKE = {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru", "Bidirectional": "bidirectional",
          "Dense": "dense", "Embedding": "embedding", "Flatten": "flatten", "Dropout": "dropout"}


def _weight_keys(class_names) -> list[str]:
    """The weights-file group of each layer (InputLayer excluded) in order."""
    seen, keys = {}, []
    for cls in class_names:
        base = _SNAKE[cls]
        count = seen.get(base, -1) + 1
        seen[base] = count
        keys.append(base if count == 0 else f"{base}_{count}")
    return keys


def _vars(group, where, path) -> list[np.ndarray]:
    if path not in group:
        raise ValueError(f"{where}: the weights file has no {path!r} (has {sorted(group.get('layers', {}))})")
    variables = group[path]
    return [np.asarray(variables[str(i)]) for i in range(len(variables))]


def _recurrent_weights(layer, arrays, where, path):
    """Keras [kernel, recurrent_kernel, (bias)] -> the rnnlab layer (a missing bias: zeros)."""
    if len(arrays) == 2:  # use_bias=False: a zero bias computes the same
        layer_shape = tuple(p.shape for p in layer.params)
        arrays = arrays + [np.zeros(layer_shape[2], dtype=arrays[0].dtype)]
    expected = [tuple(p.shape) for p in layer.params]
    if [a.shape for a in arrays] != expected:
        raise ValueError(f"{where}: {path} holds arrays of shapes {[a.shape for a in arrays]}, "
                         f"{layer.describe()} expects {expected}")
    layer.set_weights(arrays)


def _load_weights(layer, entry, weights, where, key):
    from ..layers.core import Dense, Embedding
    from ..layers.bidirectional import Bidirectional

    base = f"layers/{key}"
    if isinstance(layer, Bidirectional):
        _recurrent_weights(layer.forward_layer, _vars(weights, where, f"{base}/forward_layer/cell/vars"), where, base)
        _recurrent_weights(layer.backward_layer, _vars(weights, where, f"{base}/backward_layer/cell/vars"), where,
                           base)
    elif entry["class_name"] in RECURRENT:
        _recurrent_weights(layer, _vars(weights, where, f"{base}/cell/vars"), where, base)
    elif isinstance(layer, (Dense, Embedding)):
        arrays = _vars(weights, where, f"{base}/vars")
        expected = [tuple(p.shape) for p in layer.params]
        if [a.shape for a in arrays] != expected:
            raise ValueError(f"{where}: {base} holds arrays of shapes {[a.shape for a in arrays]}, "
                             f"{layer.describe()} expects {expected}")
        layer.set_weights(arrays)
