"""Checkpoints: one ``.npz`` file (read with ``allow_pickle=False``) holding a model, optionally
its optimizer state, and a JSON ``state`` dict (epoch, schedule, data position, RNG ...).

Layout of the file (a zip of ``.npy`` arrays)::

    model/<i>      the model's params, in ``model.params`` order
    optim/<key>    the optimizer's state arrays (``opt.state_dict()[0]``)
    state/<key>    arrays found inside ``state`` (replaced there by {"__array__": "state/<key>"})
    __meta__       uint8: the UTF-8 bytes of a JSON object
                   {"format": "rnnlab-checkpoint", "version": 1,
                    "model": {"class_name", "config"}, "optimizer": meta or null,
                    "state": {...} or null, "dtype": "float32", "build": [...], "sha256": {...}}

``build`` records how each layer of the model (pre-order walk of ``sublayers``) was built, so a
lazily built model can be rebuilt before its weights go in; ``sha256`` holds a digest of every
array, so a tampered file is caught even where the zip's CRC would not be.

Writing is atomic: a temporary file in the same folder, flushed and fsynced, then
``os.replace``d over the target, so a crash leaves either the old checkpoint or the new one,
never half of one. Any problem reading a file (truncated, bytes flipped, not a checkpoint)
raises ``CheckpointError`` naming the file. No pickle anywhere: the model is rebuilt from its
JSON config through the layer registry (``layer_from_dict``).

This module sits beside ``layers`` and ``models`` (not under ``train``): ``Model.save`` and
``rnnlab.load`` use it, and the trainers use it, so neither side imports the other.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import backend
from .fileio import atomic_write
from .layers.base import layer_from_dict, layer_to_dict

FORMAT = "rnnlab-checkpoint"
VERSION = 1
META_KEY = "__meta__"


class CheckpointError(ValueError):
    """A checkpoint file could not be read: truncated, tampered with, or not a checkpoint."""


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` returns. ``optimizer_arrays``/``optimizer_meta`` go to
    ``opt.load_state_dict`` (or ``rnnlab.optim.from_state_dict``); both are None when the
    checkpoint has no optimizer. ``state`` is the dict given to ``save_checkpoint`` (or None)."""

    model: object
    optimizer_arrays: dict | None
    optimizer_meta: dict | None
    state: dict | None


# ---- the layer tree -----------------------------------------------------------------------


def _walk(layer):
    """Pre-order walk of a layer and its sublayers."""
    yield layer
    for sub in layer.sublayers:
        yield from _walk(sub)


def _json_value(value):
    """``value`` if it survives JSON unchanged in meaning, else raise TypeError."""
    json.dumps(value)
    return value


def _build_record(layer):
    """How ``layer`` was built: {"input_shape": [...], plus any extra ``build`` argument the
    layer keeps as an attribute of the same name (e.g. an attention layer's key_dim)}, or
    None when it is not built."""
    if not layer.built or layer.input_shape is None:
        return None
    if hasattr(layer, "get_build_config"):
        return layer.get_build_config()
    record = {"input_shape": [None if d is None else int(d) for d in layer.input_shape]}
    try:
        names = list(inspect.signature(layer.build).parameters)[1:]
    except (TypeError, ValueError):
        names = []
    for name in names:
        if hasattr(layer, name):
            try:
                record[name] = _json_value(getattr(layer, name))
            except TypeError:
                pass
    return record


def _rebuild(layer, record) -> None:
    if record is None or layer.built:
        return
    if hasattr(layer, "build_from_config"):
        layer.build_from_config(record)
        return
    record = dict(record)
    shape = tuple(record.pop("input_shape"))
    layer.build(shape, **record)


# ---- state with arrays --------------------------------------------------------------------


def _split_state(state, arrays: dict, prefix: str = "state"):
    """Copy of ``state`` with every array replaced by a reference; the arrays go to ``arrays``."""
    if isinstance(state, dict):
        out = {}
        for key, value in state.items():
            if not isinstance(key, str):
                raise TypeError(f"checkpoint state keys must be strings, got {key!r}")
            out[key] = _split_state(value, arrays, f"{prefix}/{key}")
        return out
    if isinstance(state, (list, tuple)):
        return [_split_state(v, arrays, f"{prefix}/{i}") for i, v in enumerate(state)]
    if hasattr(state, "shape") and hasattr(state, "dtype"):  # NumPy/CuPy array or scalar
        if getattr(state, "ndim", 0) == 0:
            return state.item()
        arrays[prefix] = backend.to_numpy(state)
        return {"__array__": prefix}
    return state


def _join_state(state, arrays: dict):
    if isinstance(state, dict):
        if set(state) == {"__array__"}:
            return arrays[state["__array__"]]
        return {k: _join_state(v, arrays) for k, v in state.items()}
    if isinstance(state, list):
        return [_join_state(v, arrays) for v in state]
    return state


def _digest(a: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()


# ---- save ---------------------------------------------------------------------------------


def save_checkpoint(path, model, optimizer=None, state=None) -> Path:
    """Write ``model`` (and ``optimizer`` state, and the JSON-serialisable ``state`` dict, whose
    array values are stored as arrays) to ``path`` atomically. Returns the path."""
    path = Path(path)
    arrays: dict[str, np.ndarray] = {}
    params = model.params
    for i, p in enumerate(params):
        arrays[f"model/{i}"] = backend.to_numpy(p)
    opt_meta = None
    if optimizer is not None:
        opt_arrays, opt_meta = optimizer.state_dict()
        for key, a in opt_arrays.items():
            arrays[f"optim/{key}"] = backend.to_numpy(a)
    state_json = _split_state(state, arrays) if state is not None else None

    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": layer_to_dict(model),
        "optimizer": opt_meta,
        "state": state_json,
        "dtype": str(params[0].dtype) if params else backend.floatx(),
        "build": [_build_record(layer) for layer in _walk(model)],
        "sha256": {key: _digest(a) for key, a in arrays.items()},
    }
    try:
        meta_bytes = json.dumps(meta, allow_nan=True).encode("utf-8")
    except TypeError as err:
        raise TypeError(f"save_checkpoint({str(path)!r}): model config, optimizer meta and state must be "
                        f"JSON-serialisable: {err}") from err
    arrays[META_KEY] = np.frombuffer(meta_bytes, dtype=np.uint8)

    atomic_write(path, lambda f: np.savez(f, **arrays))
    folder = path.parent if str(path.parent) else Path(".")
    _fsync_dir(folder)
    return path


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless to skip where unsupported."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---- load ---------------------------------------------------------------------------------


def read_checkpoint(path) -> tuple[dict, dict[str, np.ndarray]]:
    """(meta, arrays) of a checkpoint file, every array read and verified; no model built.
    Raises CheckpointError naming the file for anything wrong with it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    where = f"checkpoint {str(path)!r}"
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}  # reads (and CRC-checks) everything
    except PermissionError:
        raise
    except zipfile.BadZipFile as err:
        raise CheckpointError(f"{where} is truncated or corrupt (not a readable npz/zip: {err})") from err
    except Exception as err:  # noqa: BLE001 - damaged bytes surface as many different errors
        raise CheckpointError(f"{where} is truncated or corrupt: {type(err).__name__}: {err}") from err
    if META_KEY not in arrays:
        raise CheckpointError(f"{where} is not an rnnlab checkpoint (no {META_KEY} entry)")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{where} has a corrupt {META_KEY} entry: {err}") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{where} is not an rnnlab checkpoint (format {meta.get('format')!r})"
                              if isinstance(meta, dict) else f"{where} has a malformed {META_KEY} entry")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{where} has format version {meta.get('version')!r}; this rnnlab reads "
                              f"version {VERSION}")
    digests = meta.get("sha256")
    if not isinstance(digests, dict) or set(digests) != set(arrays):
        missing = sorted(set(digests or {}) ^ set(arrays))
        raise CheckpointError(f"{where} is incomplete or tampered with: arrays do not match its "
                              f"record ({missing[:5]})")
    for key, a in arrays.items():
        if _digest(a) != digests[key]:
            raise CheckpointError(f"{where} was tampered with or damaged: array {key!r} "
                                  f"{a.dtype}{tuple(a.shape)} does not match its checksum")
    return meta, arrays


def model_from_config(spec: dict):
    """Build a model (or layer) from ``{"class_name", "config"}`` through the registry.

    The registry (``layers.base.LAYER_CLASSES``) is filled as each class is defined
    (``Layer.__init_subclass__``); importing ``rnnlab`` defines every layer and model of the
    package, so a checkpoint names only classes already known. A user's own model class is
    known once the module defining it has been imported."""
    if not isinstance(spec, dict):
        raise ValueError(f"expected a model config {{'class_name', 'config'}}, got {type(spec).__name__}")
    return layer_from_dict(spec)


def load_checkpoint(path, into=None) -> Checkpoint:
    """Rebuild the model a checkpoint holds (with the dtype it was saved in), load its weights
    exactly, and return it with the optimizer state and the saved ``state``.

    ``into``: an existing model of the same architecture to load the weights into instead
    (a trainer resuming keeps its own model object); layers it has not built yet are built as
    the checkpoint records."""
    path = Path(path)
    where = f"checkpoint {str(path)!r}"
    meta, arrays = read_checkpoint(path)

    previous = backend.floatx()
    try:
        backend.set_floatx(meta.get("dtype", previous))
        if into is not None:
            model = into
        else:
            try:
                model = model_from_config(meta["model"])
            except (KeyError, TypeError, ValueError) as err:
                raise CheckpointError(f"{where}: cannot rebuild the model from its config: {err}") from err
        layers = list(_walk(model))
        records = meta.get("build") or []
        if len(records) == len(layers):
            for layer, record in zip(layers, records):
                _rebuild(layer, record)
    finally:
        backend.set_floatx(previous)

    params = model.params
    n_saved = sum(1 for key in arrays if key.startswith("model/"))
    if n_saved != len(params):
        raise CheckpointError(f"{where}: holds {n_saved} weight arrays but the rebuilt {model.describe()} "
                              f"has {len(params)}")
    for i, p in enumerate(params):
        w = arrays[f"model/{i}"]
        if tuple(w.shape) != tuple(p.shape):
            raise CheckpointError(f"{where}: weight {i} has shape {tuple(w.shape)} but the rebuilt "
                                  f"{model.describe()} expects {tuple(p.shape)}")
        p[...] = backend.xp.asarray(w, dtype=p.dtype)

    opt_meta = meta.get("optimizer")
    opt_arrays = None
    if opt_meta is not None:
        opt_arrays = {key[len("optim/"):]: a for key, a in arrays.items() if key.startswith("optim/")}
    state = meta.get("state")
    if state is not None:
        state = _join_state(state, arrays)
    return Checkpoint(model=model, optimizer_arrays=opt_arrays, optimizer_meta=opt_meta, state=state)
