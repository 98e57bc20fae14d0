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

``build`` records how each layer of the model (``walk_layers``) was built, so a
lazily built model can be rebuilt before its weights go in; ``sha256`` holds a digest of every
array, and ``meta_sha256`` one of the meta itself, so a tampered file is caught even where the
zip's CRC would not be.

Reading checks before it allocates (``read_checkpoint``): the zip directory (every entry's
uncompressed size under ``MAX_ENTRY_BYTES`` and ``MAX_RATIO`` times its compressed size, the
total under ``MAX_TOTAL_BYTES``), each array's ``.npy`` header against its entry's size, the
meta's schema (``check_meta``: types of every field, ``dtype`` one of ``DTYPES``), the sizes
the model config implies against the weights stored (``check_sizes``: a config asking for a
layer larger than the file's weights could fill is refused before the model is built), and
then the shape of every weight: the model is first built as a plan (``layers.base.planning``:
placeholder weights, no memory) and its weights' shapes compared with the arrays stored. A
model given to load into (``into=``, a resumed run's) builds its lazily built layers inside
``holding_only``, and a resumed run sets up its task inside ``only_stored_weights`` (shapes
read from the ``.npy`` headers alone): a weight of a shape the file does not hold is refused
before it is allocated.

Writing is atomic: a temporary file in the same folder, flushed and fsynced, then
``os.replace``d over the target, so a crash leaves either the old checkpoint or the new one,
never half of one. Any problem reading a file (truncated, bytes flipped, not a checkpoint)
raises ``CheckpointError`` naming the file. No pickle anywhere: the model is rebuilt from its
JSON config through the layer registry (``layer_from_dict``).

This module sits beside ``layers`` and ``models`` (not under ``train``): ``Model.save`` and
``rnnlab.load`` use it, and the trainers use it, so neither side imports the other.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import math
import os
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import backend
from .fileio import atomic_write
from .layers.base import checking_weights, layer_from_dict, layer_to_dict, planning
from .layers.core import Dropout

FORMAT = "rnnlab-checkpoint"
VERSION = 1
META_KEY = "__meta__"
DTYPES = ("float16", "float32", "float64")  # what a model's weights may be stored as
MAX_META_BYTES = 64 << 20       # the JSON meta
MAX_ENTRY_BYTES = 16 << 30      # one array, uncompressed
MAX_TOTAL_BYTES = 64 << 30      # all arrays, uncompressed
MAX_RATIO = 50                  # uncompressed / compressed size of one entry (np.savez stores: 1)


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


def walk_layers(layer):
    """The one walk over a model's layers: ``layer``, then each of its ``sublayers`` walked in
    turn (pre-order). The tree ``Layer.train``/``eval`` switch, the order of a checkpoint's build
    records and where the trainer finds the dropout generators: a model keeps every part,
    dropout included, in ``sublayers``."""
    yield layer
    for sub in layer.sublayers:
        yield from walk_layers(sub)


def dropout_rng_state(model):
    """States of every dropout generator in ``model``, in the order of ``walk_layers`` (JSON; None
    on CuPy, whose generators do not expose theirs: resume is not bit-exact there)."""
    if backend.backend_name() != "numpy":
        return None
    return [layer._generator().bit_generator.state for layer in walk_layers(model) if hasattr(layer, "_generator")]


def set_dropout_rng_state(model, states) -> None:
    """Restore what ``dropout_rng_state`` gave (None: nothing to restore)."""
    if states is None:
        return
    layers = [layer for layer in walk_layers(model) if hasattr(layer, "_generator")]
    if len(states) != len(layers):
        raise ValueError(f"{len(states)} dropout generator states for the {len(layers)} dropout layers of "
                         f"{model.describe()}")
    for layer, state in zip(layers, states):
        layer._generator().bit_generator.state = state


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
        "build": [_build_record(layer) for layer in walk_layers(model)],
        "sha256": {key: _digest(a) for key, a in arrays.items()},
    }
    try:
        meta["meta_sha256"] = _meta_digest(meta)
        meta_bytes = json.dumps(meta, allow_nan=True).encode("utf-8")
    except TypeError as err:
        raise TypeError(f"save_checkpoint({str(path)!r}): model config, optimizer meta and state must be "
                        f"JSON-serialisable: {err}") from err
    arrays[META_KEY] = np.frombuffer(meta_bytes, dtype=np.uint8)

    atomic_write(path, lambda f: np.savez(f, **arrays))
    folder = path.parent if str(path.parent) else Path(".")
    _fsync_dir(folder)
    return path


def _meta_digest(meta: dict) -> str:
    """sha256 of the meta's JSON without its own ``meta_sha256`` entry (JSON round-trips exactly)."""
    body = {k: v for k, v in meta.items() if k != "meta_sha256"}
    return hashlib.sha256(json.dumps(body, allow_nan=True).encode("utf-8")).hexdigest()


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
    Raises CheckpointError naming the file for anything wrong with it; nothing larger than
    the file's own entries allow is allocated."""
    with _reading(path) as (zf, infos, where):
        meta = _read_meta(zf, infos, where)
        arrays = {key: _read_npy(zf, info, where) for key, info in infos.items() if key != META_KEY}
    digests = meta["sha256"]
    if set(digests) != set(arrays):
        missing = sorted(set(digests) ^ set(arrays))
        raise CheckpointError(f"{where} is incomplete or tampered with: arrays do not match its "
                              f"record ({missing[:5]})")
    for key, a in arrays.items():
        if _digest(a) != digests[key]:
            raise CheckpointError(f"{where} was tampered with or damaged: array {key!r} "
                                  f"{a.dtype}{tuple(a.shape)} does not match its checksum")
    return meta, arrays


def stored_weight_shapes(path) -> list[tuple]:
    """The shapes of the model weights a checkpoint file stores (``model/0``, ``model/1`` ...),
    read from the zip directory and the ``.npy`` headers alone: no array is read."""
    shapes: dict[str, tuple] = {}
    with _reading(path) as (zf, infos, where):
        for key, info in infos.items():
            if key.startswith("model/"):
                with zf.open(info) as f:
                    shapes[key] = _read_header(f, info, where)[0]
        return _model_entries(shapes, where)


def only_stored_weights(path):
    """``holding_only`` the weights the checkpoint at ``path`` stores (read from its headers)."""
    return holding_only(stored_weight_shapes(path), f"checkpoint {str(Path(path))!r}")


@contextlib.contextmanager
def _reading(path):
    """(open zip, {key: ZipInfo} checked as ``_check_directory`` does, where) of a checkpoint
    file; anything that goes wrong reading it becomes a CheckpointError naming the file."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    where = f"checkpoint {str(path)!r}"
    try:
        with zipfile.ZipFile(path) as zf:
            yield zf, _check_directory(zf, where), where
    except (PermissionError, IsADirectoryError, CheckpointError):
        raise
    except zipfile.BadZipFile as err:
        raise CheckpointError(f"{where} is not an rnnlab checkpoint, or is truncated or corrupt "
                              f"(not a readable zip: {err})") from err
    except Exception as err:  # noqa: BLE001 - damaged bytes surface as many different errors
        raise CheckpointError(f"{where} is truncated or corrupt: {type(err).__name__}: {err}") from err


def _check_directory(zf: zipfile.ZipFile, where: str) -> dict:
    """{key: ZipInfo} of the ``.npy`` entries, after checking their sizes in the zip directory
    (nothing is inflated yet): a small entry that would inflate to gigabytes is refused here."""
    infos, total = {}, 0
    for info in zf.infolist():
        if not info.filename.endswith(".npy") or info.filename[:-4] in infos:
            raise CheckpointError(f"{where} is not an rnnlab checkpoint (unexpected entry {info.filename[:80]!r})")
        limit = MAX_META_BYTES if info.filename == META_KEY + ".npy" else MAX_ENTRY_BYTES
        if info.file_size > limit or info.file_size > MAX_RATIO * info.compress_size + 4096:
            raise CheckpointError(f"{where}: entry {info.filename[:80]!r} would inflate to {info.file_size:,} "
                                  f"bytes from {info.compress_size:,}; refused before reading it")
        total += info.file_size
        infos[info.filename[:-4]] = info
    if total > MAX_TOTAL_BYTES:
        raise CheckpointError(f"{where}: its arrays would take {total:,} bytes (limit {MAX_TOTAL_BYTES:,})")
    if META_KEY not in infos:
        raise CheckpointError(f"{where} is not an rnnlab checkpoint (no {META_KEY} entry)")
    return infos


def _read_header(f, info: zipfile.ZipInfo, where: str) -> tuple[tuple, bool, np.dtype, int]:
    """(shape, fortran order, dtype, bytes of data) from a ``.npy`` entry's header, checked
    against the entry's size; object (pickled) arrays are refused."""
    fmt = np.lib.format
    version = fmt.read_magic(f)
    if version == (1, 0):
        shape, fortran, dtype = fmt.read_array_header_1_0(f)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = fmt.read_array_header_2_0(f)
    else:
        raise CheckpointError(f"{where}: entry {info.filename!r} has .npy version {version}")
    if dtype.hasobject:
        raise CheckpointError(f"{where}: entry {info.filename!r} holds Python objects; refused (no pickle)")
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow on a crafted shape
    if nbytes > info.file_size:
        raise CheckpointError(f"{where}: entry {info.filename!r} claims shape {shape} ({nbytes:,} bytes) in "
                              f"{info.file_size:,} bytes")
    return tuple(shape), fortran, dtype, nbytes


def _read_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    """One ``.npy`` entry, its header checked (``_read_header``) before the array is allocated."""
    with zf.open(info) as f:
        shape, fortran, dtype, nbytes = _read_header(f, info, where)
        data = f.read(nbytes)
        if len(data) != nbytes or f.read(1):  # reading to the end also checks the zip's CRC
            raise CheckpointError(f"{where}: entry {info.filename!r} does not hold the {shape} {dtype} it claims")
    array = np.frombuffer(bytearray(data), dtype=dtype)
    return array.reshape(shape[::-1]).T if fortran else array.reshape(shape)


def _read_meta(zf: zipfile.ZipFile, infos: dict, where: str) -> dict:
    raw = _read_npy(zf, infos[META_KEY], where)
    try:
        meta = json.loads(raw.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{where} has a corrupt {META_KEY} entry: {err}") from err
    check_meta(meta, where)
    return meta


def check_meta(meta, where: str) -> None:
    """The schema of a checkpoint's JSON meta; CheckpointError naming ``where`` and the field."""
    if not isinstance(meta, dict):
        raise CheckpointError(f"{where} has a malformed {META_KEY} entry (a {type(meta).__name__}, not an object)")
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{where} is not an rnnlab checkpoint (format {str(meta.get('format'))[:40]!r})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{where} has format version {str(meta.get('version'))[:40]!r}; this rnnlab reads "
                              f"version {VERSION}")
    if "meta_sha256" in meta and meta["meta_sha256"] != _meta_digest(meta):
        raise CheckpointError(f"{where} was tampered with or damaged: its {META_KEY} does not match its checksum")
    schema = {"model": dict, "optimizer": (dict, type(None)), "state": (dict, type(None)), "dtype": str,
              "build": (list, type(None)), "sha256": dict}
    for key, kind in schema.items():
        if key == "build" and key not in meta:
            continue
        if not isinstance(meta.get(key), kind):
            raise CheckpointError(f"{where}: {META_KEY} field {key!r} is missing or of the wrong type "
                                  f"({type(meta.get(key)).__name__})")
    if meta["dtype"] not in DTYPES:
        raise CheckpointError(f"{where}: {META_KEY} dtype {meta['dtype'][:40]!r} is not one of {', '.join(DTYPES)}")
    model = meta["model"]
    if not isinstance(model.get("class_name"), str) or not isinstance(model.get("config", {}), dict):
        raise CheckpointError(f"{where}: {META_KEY} 'model' needs a 'class_name' string and a 'config' object")
    if not all(isinstance(k, str) and isinstance(v, str) and len(v) == 64 for k, v in meta["sha256"].items()):
        raise CheckpointError(f"{where}: {META_KEY} 'sha256' must map array names to hex digests")
    if not all(r is None or isinstance(r, dict) for r in meta.get("build") or []):
        raise CheckpointError(f"{where}: {META_KEY} 'build' must be a list of objects")


def _ints(value, skip=("seed",)):
    """Every size in a JSON value: its integers, except under keys containing a ``skip`` word
    and except the leading entries of a shape (a list of integers and nulls), whose batch and
    time sizes allocate no weights: only its last, the features, counts."""
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            if not any(word in str(k) for word in skip):
                yield from _ints(v, skip)
    elif isinstance(value, list):
        if value and all(v is None or isinstance(v, int) and not isinstance(v, bool) for v in value):
            value = value[-1:]
        for v in value:
            yield from _ints(v, skip)


def check_sizes(meta: dict, arrays: dict, where: str) -> None:
    """Refuse a model config asking for layers larger than the stored weights could fill.

    A layer of ``n`` units (or an embedding of ``n`` rows, an input of ``n`` features) holds at
    least ``n`` weights, so no size in the config or the build records can exceed the number of
    weights stored (with a small floor for models without weights): a meta edited to
    ``"hidden": 30000`` is refused here, before the model would allocate it."""
    stored = sum(int(a.size) for key, a in arrays.items() if key.startswith("model/"))
    limit = max(stored, 1024)
    for part in ("model", "build"):
        biggest = max(_ints(meta.get(part)), default=0)
        if biggest > limit:
            raise CheckpointError(f"{where}: its {part} asks for a size of {biggest:,} but the file stores only "
                                  f"{stored:,} weights; refused before building the model")


def _build(meta: dict, into, where: str):
    """The model of ``meta`` (or ``into``), its lazily built layers built as ``meta`` records,
    in the dtype it was saved in."""
    previous = backend.floatx()
    try:
        backend.set_floatx(meta["dtype"])
        if into is not None:
            model = into
        else:
            try:
                model = model_from_config(meta["model"])
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
                raise CheckpointError(f"{where}: cannot rebuild the model from its config: {err}") from err
        layers = list(walk_layers(model))
        records = meta.get("build") or []
        if len(records) != len(layers):
            # written before a seq2seq model's encoder and decoder listed their dropout layers in
            # sublayers: the records then skip the Dropouts (which have no weights to build)
            layers = [layer for layer in layers if not isinstance(layer, Dropout)]
        if len(records) == len(layers):
            try:
                for layer, record in zip(layers, records):
                    _rebuild(layer, record)
            except CheckpointError:
                raise
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as err:
                raise CheckpointError(f"{where}: cannot rebuild the model as its build record says: {err}") from err
    finally:
        backend.set_floatx(previous)
    return model


def _model_entries(entries: dict, where: str) -> list:
    """The values of ``entries`` (arrays, or shapes) named ``model/0``, ``model/1`` ... in
    order (CheckpointError for a gap in the numbering)."""
    keys = [key for key in entries if key.startswith("model/")]
    if set(keys) != {f"model/{i}" for i in range(len(keys))}:
        raise CheckpointError(f"{where}: its model weights are not numbered model/0 to model/{len(keys) - 1}")
    return [entries[f"model/{i}"] for i in range(len(keys))]


def _compare_weights(model, stored: list[tuple], where: str) -> None:
    """CheckpointError unless ``model``'s weights have the ``stored`` shapes, in order."""
    params = model.params
    if len(stored) != len(params):
        raise CheckpointError(f"{where}: holds {len(stored)} weight arrays but the rebuilt {model.describe()} "
                              f"has {len(params)}")
    for i, (shape, p) in enumerate(zip(stored, params)):
        if shape != tuple(p.shape):
            raise CheckpointError(f"{where}: weight {i} has shape {shape} but the rebuilt "
                                  f"{model.describe()} expects {tuple(p.shape)}")


@contextlib.contextmanager
def holding_only(stored: list[tuple], where: str):
    """Inside, a layer may build only weights of the ``stored`` shapes (each shape as many times
    as stored): one that a checkpoint does not hold is refused before it is allocated. A resumed
    run builds its model inside, so an edited config.json asking for a larger model than its
    checkpoint fails at once, not after allocating it."""
    left = Counter(stored)

    def check(layer, name, shape):
        if left[shape] < 1:
            shapes = ", ".join(str(s) for s in sorted(set(stored))[:6])
            raise CheckpointError(f"{where} holds no weight of shape {shape} for the {name} of {layer.describe()} "
                                  f"(its weights' shapes: {shapes or 'none'}): the model and the checkpoint "
                                  f"disagree; refused before allocating it")
        left[shape] -= 1

    with checking_weights(check):
        yield


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
    the checkpoint records, each weight refused before it is allocated unless the file holds
    one of its shape.

    The model is first built as a plan (``layers.base.planning``: shapes, no memory) and its
    weights' shapes compared with the arrays stored, so a config asking for more than the file
    holds is refused before anything is allocated for it."""
    path = Path(path)
    where = f"checkpoint {str(path)!r}"
    meta, arrays = read_checkpoint(path)
    check_sizes(meta, arrays, where)
    weights = _model_entries(arrays, where)
    stored = [tuple(w.shape) for w in weights]
    if into is None:
        with planning():
            plan = _build(meta, None, where)
        _compare_weights(plan, stored, where)
        model = _build(meta, None, where)
    else:
        with holding_only(stored, where):
            model = _build(meta, into, where)
    _compare_weights(model, stored, where)
    for p, w in zip(model.params, weights):
        p[...] = backend.xp.asarray(w, dtype=p.dtype)

    opt_meta = meta.get("optimizer")
    opt_arrays = None
    if opt_meta is not None:
        opt_arrays = {key[len("optim/"):]: a for key, a in arrays.items() if key.startswith("optim/")}
    state = meta.get("state")
    if state is not None:
        state = _join_state(state, arrays)
    return Checkpoint(model=model, optimizer_arrays=opt_arrays, optimizer_meta=opt_meta, state=state)
