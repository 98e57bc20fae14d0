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

A file from anywhere reads only itself and never more memory than its model needs. Before
anything is inflated or read: each zip member's declared size against a limit (config.json
``MAX_CONFIG_BYTES``, the weights ``weights_limit(max_params)``), and it is then inflated in
chunks that stop past the limit whatever the header said; the config at most
``configfiles.MAX_NESTING`` levels deep and every field it uses of the type it needs. The model is
planned from the config (``layers.base.planning``: shapes, no memory) and refused above
``max_params`` parameters (``MAX_PARAMS``; ``load_keras(path, max_params=N)`` raises the
limit). Every HDF5 object on the way to a weight must be reached by hard links (no external or
soft link), and every weight dataset must keep its data inside the file (no external storage,
no virtual dataset), use no filter but gzip, shuffle and fletcher32 (the ones HDF5 builds in; a
filter plugin would load a library), hold floats, and have exactly the shape the config
implies; only then is it read.
"""
from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

from .. import validate
from ..configfiles import MAX_CONFIG_BYTES, parse_json, read_capped
from . import UnsupportedError, require

SUPPORTED = ("InputLayer", "Embedding", "SimpleRNN", "LSTM", "GRU", "Bidirectional", "Dense", "Flatten",
             "Dropout")
RECURRENT = ("SimpleRNN", "LSTM", "GRU")
DENSE_ACTIVATIONS = ("linear", "tanh", "sigmoid", "relu", "softmax")
# options of a recurrent layer that change training only, or nothing, and that rnnlab takes as given
_TRAINING_ONLY = ("kernel_initializer", "recurrent_initializer", "bias_initializer", "unit_forget_bias", "seed")
MAX_PARAMS = 50_000_000      # the largest model load_keras reads unless given max_params= (float32: 200 MB)
_H5_OVERHEAD = 16 << 20      # a weights file's bytes beyond its weights: HDF5's own records
_CHUNK = 1 << 20             # zip members are inflated this much at a time
_FILTERS = {1: "gzip", 2: "shuffle", 3: "fletcher32"}  # HDF5's built-in filters (H5Z_FILTER_*) a dataset may use
# what h5py raises on damaged bytes (naming neither the file nor the object)
_H5_ERRORS = (OSError, RuntimeError, KeyError, TypeError, ValueError, OverflowError)


def weights_limit(max_params: int = MAX_PARAMS) -> int:
    """The largest ``model.weights.h5`` a ``.keras`` zip may inflate to: ``max_params`` float64
    weights and HDF5's records."""
    return max_params * 8 + _H5_OVERHEAD


def read_keras_file(path, config=None, max_params: int = MAX_PARAMS) -> tuple[dict, "object"]:
    """(model config dict, open h5py File of the weights) from a ``.keras`` zip or a
    ``.weights.h5`` file (``config``: a dict, a JSON file from ``model.to_json()``, or the
    ``config.json`` of a ``.keras`` file). Zip members are inflated only within their limits."""
    h5py = require("h5py", "reading Keras weights")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {path}")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                members = {info.filename: info for info in archive.infolist()}
                missing = {"config.json", "model.weights.h5"} - set(members)
                if missing:
                    raise ValueError(f"{path}: not a Keras 3 .keras file (no {', '.join(sorted(missing))} inside)")
                spec = _parse_json(_inflate(archive, members["config.json"], MAX_CONFIG_BYTES, path).getvalue(),
                                   f"{path}:config.json")
                image = _inflate(archive, members["model.weights.h5"], weights_limit(max_params), path)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as err:
            raise ValueError(f"{path}: a damaged .keras zip ({type(err).__name__}: {err})") from err
        return spec, _open_h5(h5py, image, f"{path}:model.weights.h5")
    if config is None:
        raise ValueError(f"{path}: a weights file holds no architecture: pass config= (a JSON file written "
                         f"from model.to_json(), or a dict)")
    if isinstance(config, (str, Path)):
        config = _parse_json(read_capped(config), str(config))
    return config, _open_h5(h5py, path, str(path))


def _inflate(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, path) -> io.BytesIO:
    """A zip member's bytes, refused when its declared size is over ``limit`` (nothing
    inflated) and when inflating passes ``limit`` (a header may lie): at most ``limit`` bytes
    are ever held."""
    refused = f"{path}: {info.filename} would inflate to more than {limit:,} bytes; refused"
    if info.file_size > limit:
        raise ValueError(f"{refused} (it declares {info.file_size:,}) before reading it")
    data, size = io.BytesIO(), 0
    with archive.open(info) as member:
        while chunk := member.read(_CHUNK):
            size += len(chunk)
            if size > limit:
                raise ValueError(refused)
            data.write(chunk)
    data.seek(0)
    return data


def _open_h5(h5py, source, where: str):
    try:
        return h5py.File(source, "r")
    except _H5_ERRORS as err:
        raise ValueError(f"{where}: not an HDF5 weights file ({err})") from err


def _parse_json(data: bytes, where: str) -> dict:
    spec = parse_json(data, where)
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise ValueError(f"{where}: expected a Keras model config {{\"class_name\": ..., \"config\": ...}}")
    return spec


def load_keras(path, config=None, max_params: int = MAX_PARAMS):
    """The rnnlab ``Sequential`` equivalent to a Keras 3 model file, its weights loaded.

    ``path``: a ``.keras`` file, or a ``.weights.h5`` file with ``config`` (see
    ``read_keras_file``). Raises ``UnsupportedError`` naming any layer or option with no rnnlab
    equivalent, ``ValueError`` naming the file for a damaged or foreign one, and for a model of
    more than ``max_params`` parameters (``MAX_PARAMS``, 50 million, unless raised here).
    """
    spec, weights = read_keras_file(path, config, max_params)
    try:
        return model_from_keras(spec, weights, where=str(path), max_params=max_params)
    finally:
        weights.close()


def model_from_keras(spec: dict, weights, where: str = "Keras model", max_params: int = MAX_PARAMS):
    """An rnnlab ``Sequential`` from a parsed Keras config and an h5py group of its weights.

    The model is planned first (shapes, no memory), its size checked against ``max_params`` and
    each weight dataset against the shape planned for it; only then is it built and read."""
    from ..layers.base import planning

    entries, input_shape, name = _read_config(spec, where)
    with planning():
        plan = _build(entries, input_shape, name, where)
    count = plan.count_params()
    if count > max_params:
        raise ValueError(f"{where}: the model has {count:,} parameters, more than the limit of {max_params:,}; "
                         f"refused before reading it (load_keras(path, max_params=N) raises the limit)")
    keys = _weight_keys([entry["class_name"] for entry in entries])
    try:
        sources = [_checked_sources(layer, entry, weights, where, key)
                   for layer, entry, key in zip(plan.sublayers[1:], entries, keys)]
    except _H5_ERRORS as err:
        if str(err).startswith(where):  # a refusal of ours, which names the file already
            raise
        raise ValueError(f"{where}: a damaged weights file ({type(err).__name__}: {err})") from err
    model = _build(entries, input_shape, name, where)
    for layer, layer_sources in zip(model.sublayers[1:], sources):
        for part, datasets in layer_sources:
            _read_into(getattr(layer, part) if part else layer, datasets, where)
    model.eval()
    return model


def _short(value) -> str:
    """``repr(value)``, cut to 60 characters (a crafted config's values can be any size)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value) -> str:
    return f"{type(value).__name__} {_short(value)}" if value is not None else "null"


def _mapping(value, where: str, what: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{where}: {what} must be an object, got {_kind(value)}")
    return value


def _shape(value, where: str, what: str) -> tuple:
    """A Keras batch shape ``[batch, ...]`` without its batch entry; each size null or >= 1."""
    if not isinstance(value, list) or len(value) < 2:
        raise ValueError(f"{where}: {what} must be a list [batch, size, ...], got {_kind(value)}")
    return tuple(None if d is None else validate.positive_int(f"{where}: {what}", "each size", d)
                 for d in value[1:])


def _read_config(spec: dict, where: str) -> tuple[list[dict], tuple, str | None]:
    """(the layer entries but InputLayer's, the input shape, the model's name) of a Keras
    Sequential config, its structure checked: a bad entry is a ValueError naming it."""
    if spec.get("class_name") != "Sequential":
        raise UnsupportedError(f"{where}: the model is a Keras {_short(spec.get('class_name'))}; only "
                               f"Sequential models are supported (a Functional chain: rebuild it as keras.Sequential)")
    cfg = _mapping(spec.get("config"), where, "the Sequential's config")
    layer_specs = cfg.get("layers")
    if not isinstance(layer_specs, list):
        raise ValueError(f"{where}: the Sequential config has no list of layers")
    entries, input_shape = [], None
    for i, entry in enumerate(layer_specs):
        entry = _mapping(entry, where, f"layer {i}")
        config = _mapping(entry.get("config"), where, f"layer {i}'s config")
        cls = entry.get("class_name")
        if not isinstance(cls, str) or cls not in SUPPORTED:
            what = cls if isinstance(cls, str) else _short(cls)
            raise UnsupportedError(f"{where}: layer {_short(config.get('name', i))} is a Keras {what}, "
                                   f"which rnnlab does not have (supported: {', '.join(SUPPORTED)})")
        if cls == "InputLayer":
            shape = config.get("batch_shape") or config.get("batch_input_shape")
            input_shape = _shape(shape, where, f"layer {i} (InputLayer) batch_shape")
            continue
        entries.append(entry)
    if input_shape is None and cfg.get("build_input_shape") is not None:
        input_shape = _shape(cfg["build_input_shape"], where, "build_input_shape")
    if input_shape is None:
        raise ValueError(f"{where}: the model has no input shape (no InputLayer, never built): "
                         f"build it in Keras first")
    name = cfg.get("name")
    return entries, input_shape, name if isinstance(name, str) else None


def _build(entries, input_shape, name, where):
    """The rnnlab Sequential of the checked entries (a plan inside ``planning()``)."""
    from ..layers.core import Input
    from ..models.base import Sequential

    layers = [_convert(entry, where) for entry in entries]
    _check_masking(list(zip(layers, entries)), where)
    try:
        return Sequential([Input(input_shape)] + layers, name=name)
    except ValueError as err:  # a layer that cannot take its input's shape, or a weight too large to exist
        raise ValueError(f"{where}: {err}") from err


def _layer_name(config) -> str:
    name = config.get("name", "?")
    return name if isinstance(name, str) else str(name)[:60]


def _option(config, key, allowed, where, lname, cls):
    value = config.get(key)
    if value not in allowed:
        raise UnsupportedError(f"{where}: layer {lname!r} ({cls}) has {key}={_short(value)}; rnnlab supports "
                               f"{' or '.join(repr(a) for a in allowed)}")


def _no_training_extras(config, where, lname, cls):
    for key in ("dropout", "recurrent_dropout"):
        if validate.rate(f"{where}: layer {lname!r} ({cls})", key, config.get(key) or 0.0) != 0.0:
            raise UnsupportedError(f"{where}: layer {lname!r} ({cls}) has {key}={config[key]}; rnnlab's "
                                   f"recurrent layers have no {key} (put a Dropout layer between layers)")
    for key, value in config.items():
        if key.endswith(("_regularizer", "_constraint")) and value is not None:
            raise UnsupportedError(f"{where}: layer {lname!r} ({cls}) has {key}; rnnlab has none")


def _recurrent(entry, where):
    from ..layers.kinds import layer_class

    cls, config = entry["class_name"], entry["config"]
    lname = _layer_name(config)
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
    units = validate.positive_int(f"{where}: layer {lname!r} ({cls})", "units", config.get("units"))
    return layer_class(cls)(units, **kwargs)


def _convert(entry, where):
    """The rnnlab layer for one supported Keras layer config (``entry``'s structure checked by
    ``_read_config``)."""
    from ..layers import core
    from ..layers.bidirectional import Bidirectional

    cls, config = entry["class_name"], entry["config"]
    lname = _layer_name(config)
    owner = f"{where}: layer {lname!r} ({cls})"
    if cls in RECURRENT:
        return _recurrent(entry, where)
    if cls == "Bidirectional":
        inner = _mapping(config.get("layer"), where, f"layer {lname!r} (Bidirectional) 'layer'")
        _mapping(inner.get("config"), where, f"layer {lname!r} (Bidirectional) 'layer' config")
        back = config.get("backward_layer")
        if inner.get("class_name") not in RECURRENT:
            raise UnsupportedError(f"{where}: Bidirectional {lname!r} wraps a Keras "
                                   f"{_short(inner.get('class_name'))}")
        if config.get("merge_mode") not in ("concat", "sum", "ave", "mul"):
            raise UnsupportedError(f"{where}: Bidirectional {lname!r} has merge_mode="
                                   f"{_short(config.get('merge_mode'))}; a Sequential needs concat, sum, ave or mul")
        if back is not None:
            back_config = _mapping(_mapping(back, where, f"layer {lname!r} backward_layer").get("config"), where,
                                   f"layer {lname!r} backward_layer config")
            same = {k: v for k, v in back_config.items() if k not in ("name", "go_backwards") + _TRAINING_ONLY}
            ref = {k: v for k, v in inner["config"].items() if k not in ("name", "go_backwards") + _TRAINING_ONLY}
            if back.get("class_name") != inner.get("class_name") or same != ref:
                raise UnsupportedError(f"{where}: Bidirectional {lname!r} has a backward layer unlike its forward "
                                       f"layer; rnnlab's Bidirectional runs a copy of the forward layer backwards")
        return Bidirectional(_recurrent(inner, where), merge_mode=config["merge_mode"], name=lname)
    if cls == "Embedding":
        for key in ("embeddings_regularizer", "embeddings_constraint", "activity_regularizer"):
            if config.get(key) is not None:
                raise UnsupportedError(f"{where}: layer {lname!r} (Embedding) has {key}; rnnlab has none")
        return core.Embedding(validate.positive_int(owner, "input_dim", config.get("input_dim")),
                              validate.positive_int(owner, "output_dim", config.get("output_dim")),
                              mask_zero=bool(config.get("mask_zero")), name=lname)
    if cls == "Dense":
        _option(config, "activation", DENSE_ACTIVATIONS, where, lname, cls)
        for key, value in config.items():
            if key.endswith(("_regularizer", "_constraint")) and value is not None:
                raise UnsupportedError(f"{where}: layer {lname!r} (Dense) has {key}; rnnlab has none")
        return core.Dense(validate.positive_int(owner, "units", config.get("units")),
                          activation=config.get("activation"), use_bias=bool(config.get("use_bias", True)),
                          name=lname)
    if cls == "Flatten":
        if config.get("data_format") not in (None, "channels_last"):
            raise UnsupportedError(f"{where}: Flatten {lname!r} has data_format={_short(config['data_format'])}")
        return core.Flatten(name=lname)
    noise = config.get("noise_shape")
    if noise is not None and not isinstance(noise, list):
        raise ValueError(f"{owner}: noise_shape must be a list, got {_kind(noise)}")
    return core.Dropout(validate.rate(owner, "rate", config.get("rate")), noise_shape=tuple(noise) if noise else None,
                        name=lname)


def _check_masking(layers, where):
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
        raise UnsupportedError(f"{where}: layer {_layer_name(config)!r} returns sequences under a mask_zero mask "
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


def _checked_sources(layer, entry, weights, where, key) -> list[tuple[str | None, list]]:
    """[(part, datasets)] of one planned layer: ``part`` None for the layer itself, else the
    attribute of a Bidirectional's direction; each dataset checked (``_datasets``) and of the
    shape the plan gives it. A recurrent layer without bias (``use_bias=False``) has two."""
    from ..layers.core import Dense, Embedding
    from ..layers.bidirectional import Bidirectional

    base = f"layers/{key}"
    if isinstance(layer, Bidirectional):
        parts = [(part, f"{base}/{part}/cell/vars") for part in ("forward_layer", "backward_layer")]
    elif entry["class_name"] in RECURRENT:
        parts = [(None, f"{base}/cell/vars")]
    elif isinstance(layer, (Dense, Embedding)):
        parts = [(None, f"{base}/vars")]
    else:
        return []
    sources = []
    for part, path in parts:
        target = getattr(layer, part) if part else layer
        expected = [tuple(p.shape) for p in target.params]
        counts = (2, 3) if part or entry["class_name"] in RECURRENT else (len(expected),)  # bias optional
        datasets = _datasets(weights, path, counts, where)
        shapes = [tuple(d.shape) for d in datasets]
        if shapes != expected[:len(shapes)]:
            raise ValueError(f"{where}: {path} holds arrays of shapes {shapes}, {target.describe()} expects "
                             f"{expected}; refused before reading them")
        sources.append((part, datasets))
    return sources


def _datasets(weights, path: str, counts: tuple, where: str) -> list:
    """The datasets ``path/0``, ``path/1`` ... of a weights file, refused (ValueError naming the
    file and the dataset) unless reached by hard links only, as many as one of ``counts``,
    each keeping its data in the file (no external storage, not virtual), filtered by nothing
    but ``_FILTERS`` and holding floats. Nothing is read."""
    import h5py

    group = _hard_path(weights, path, where)
    names = sorted(group)
    if len(names) not in counts or set(names) != {str(i) for i in range(len(names))}:
        raise ValueError(f"{where}: {path} holds {len(names)} entries ({', '.join(names[:6])}); "
                         f"expected {' or '.join(map(str, counts))} weights named 0, 1 ...")
    datasets = []
    for i in range(len(names)):
        dset = _hard_path(group, str(i), where, f"{path}/{i}")
        if not isinstance(dset, h5py.Dataset):
            raise ValueError(f"{where}: {path}/{i} is not a dataset")
        _check_storage(dset, f"{where}: dataset {path}/{i}")
        datasets.append(dset)
    return datasets


def _hard_path(root, path: str, where: str, shown: str | None = None):
    """The object at ``path`` under ``root``, every link on the way a hard link (an external
    link would open another file, a soft link may lead anywhere in this one)."""
    import h5py

    node = root
    for part in path.split("/"):
        link = node.get(part, getlink=True) if isinstance(node, h5py.Group) else None
        if link is None:
            raise ValueError(f"{where}: the weights file has no {shown or path!r} (under {node.name!r}: "
                             f"{sorted(node)[:8] if isinstance(node, h5py.Group) else 'a dataset'})")
        if not isinstance(link, h5py.HardLink):
            raise ValueError(f"{where}: {shown or path!r} is reached through a {type(link).__name__} "
                             f"({part!r}); a Keras weights file holds hard links only: refused")
        node = node[part]
    return node


def _check_storage(dset, what: str) -> None:
    """ValueError unless the dataset's data lie in the file, behind known filters, as floats."""
    import h5py

    plist = dset.id.get_create_plist()
    if plist.get_layout() == h5py.h5d.VIRTUAL:
        raise ValueError(f"{what} is a virtual dataset (its data would come from other files); refused")
    if plist.get_external_count():
        name = plist.get_external(0)[0].decode("utf-8", "replace")
        raise ValueError(f"{what} keeps its data in an external file ({name!r}); refused")
    for i in range(plist.get_nfilters()):
        code = plist.get_filter(i)[0]
        if code not in _FILTERS:
            raise ValueError(f"{what} uses HDF5 filter {code}, not one of {', '.join(_FILTERS.values())}; refused")
    if dset.dtype.kind != "f" or dset.dtype.itemsize > 8:
        raise ValueError(f"{what} holds {dset.dtype}, not floats; refused")


def _read_into(layer, datasets, where: str) -> None:
    """Read the checked datasets into ``layer`` (a recurrent layer's missing bias: zeros, which
    compute the same as no bias)."""
    try:
        arrays = [np.asarray(d[()]) for d in datasets]
    except _H5_ERRORS as err:
        raise ValueError(f"{where}: cannot read the weights of {layer.describe()} "
                         f"({type(err).__name__}: {err})") from err
    if len(arrays) < len(layer.params):  # use_bias=False
        arrays.append(np.zeros(layer.params[2].shape, dtype=arrays[0].dtype))
    layer.set_weights(arrays)
