"""The Layer contract every rnnlab layer and model follows.

A layer is a small object with

- ``params``: list of arrays (the weights, Keras order ``kernel, recurrent_kernel, bias``);
- ``grads``: list of arrays of the same shapes in the same order, written by ``backward``;
- ``forward(x, ...)``: computes the output and caches what ``backward`` needs;
- ``backward(dout)``: from dL/d(output) writes dL/d(param) into ``grads`` (overwriting, not
  accumulating) and returns dL/d(input).

Arrays in ``params`` are never rebound, only written in place (``p[...] = ...``): optimizers,
``set_weights`` and the checkpoint loader rely on it, and layers keep direct references such
as ``self.kernel``.

Shapes given to ``build`` and returned by ``compute_output_shape`` exclude the batch axis, as
in Keras. A layer builds itself from the first input it sees when it was not built before.
Composite layers (``Bidirectional``, models) list their parts in ``sublayers``; their
``params``/``grads`` are their own followed by those of the parts, in order.

Every weight is created by ``Layer.add_weight``, so what a model would allocate can be known
before it is: inside ``planning()`` layers get placeholder weights that take no memory (the
shapes and the parameter count of a model built from a config nobody has checked yet), and
inside ``checking_weights(check)`` each weight's shape goes to ``check`` before it is allocated
(a resumed run refuses a config whose weights its checkpoint does not hold).
"""
from __future__ import annotations

import contextlib
import contextvars
import math
import re
from collections import defaultdict

import numpy as np

from .. import backend
from .. import initializers
from .. import validate

_name_counts: dict[str, int] = defaultdict(int)
# per thread (a context variable): a model planned in one thread leaves another's real
_planning = contextvars.ContextVar("rnnlab_planning", default=False)
_weight_checks = contextvars.ContextVar("rnnlab_weight_checks", default=())  # checking_weights(), innermost last


@contextlib.contextmanager
def planning():
    """Layers built inside get read-only placeholder weights (every element one shared zero,
    so a weight of any shape takes no memory): a model's shapes and ``count_params`` without
    allocating it. A planned model is for looking at, never for computing."""
    token = _planning.set(True)
    try:
        yield
    finally:
        _planning.reset(token)


def is_planning() -> bool:
    return _planning.get()


@contextlib.contextmanager
def checking_weights(check):
    """Inside, ``check(layer, name, shape)`` is called before each weight is allocated; it
    raises to refuse the weight (nothing of it allocated)."""
    token = _weight_checks.set(_weight_checks.get() + (check,))
    try:
        yield
    finally:
        _weight_checks.reset(token)


def _snake(name: str) -> str:
    name = name.replace("RNN", "Rnn").replace("LSTM", "Lstm").replace("GRU", "Gru")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def unique_name(prefix: str) -> str:
    """Keras-style names: ``lstm``, ``lstm_1``, ``lstm_2`` ..."""
    count = _name_counts[prefix]
    _name_counts[prefix] += 1
    return prefix if count == 0 else f"{prefix}_{count}"


def reset_name_counts() -> None:
    _name_counts.clear()


class ShapeError(ValueError):
    """A layer got an input (or mask, or state) of the wrong shape."""


LAYER_CLASSES: dict[str, type] = {}


class Layer:
    """Base class: parameter bookkeeping, building, config, input checks."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        LAYER_CLASSES[cls.__name__] = cls

    def __init__(self, name: str | None = None, trainable: bool = True, seed: int | None = None):
        owner = type(self).__name__
        self.name = validate.text(owner, "name", name) or unique_name(_snake(owner))
        self.trainable = validate.flag(owner, "trainable", trainable)
        self.seed = validate.seed(owner, seed)
        self.training = True
        self.built = False
        self.input_shape: tuple | None = None
        self.sublayers: list[Layer] = []
        self._params: list = []
        self._grads: list = []
        self.weight_names: list[str] = []

    # ---- parameters -------------------------------------------------------------------
    @property
    def params(self) -> list:
        return self._params + [p for layer in self.sublayers for p in layer.params]

    @property
    def grads(self) -> list:
        return self._grads + [g for layer in self.sublayers for g in layer.grads]

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng(self.seed) if self.seed is not None else initializers.default_rng()

    def add_weight(self, name: str, shape: tuple, initializer, rng=None):
        """Create a parameter (floatx, current backend) and its zeroed gradient buffer."""
        init = initializers.get(initializer)
        if any(d is None for d in shape):  # built from an input whose feature size is unknown
            raise validate.ArgumentError(f"{self.describe()}: cannot make its {name} of shape {tuple(shape)}: build "
                                         f"it from an input whose sizes are known")
        shape = tuple(int(d) for d in shape)
        for check in _weight_checks.get():
            check(self, name, shape)
        if _planning.get():
            if math.prod(shape) >= 2**62:  # past what an array's size can count
                raise validate.ArgumentError(f"{self.describe()}: its {name} of shape {shape} is too large to exist")
            placeholder = np.broadcast_to(np.zeros((), dtype=backend.floatx()), shape)
            self._params.append(placeholder)
            self._grads.append(placeholder)
            self.weight_names.append(name)
            return placeholder
        # C order always: gradient checks and in-place updates assume contiguous rows
        value = backend.asarray(np.ascontiguousarray(init(shape, rng or self._rng())), dtype=backend.floatx())
        self._params.append(value)
        self._grads.append(backend.xp.zeros_like(value))
        self.weight_names.append(name)
        return value

    def count_params(self) -> int:
        return int(sum(p.size for p in self.params))

    def get_weights(self) -> list:
        """Host NumPy copies of ``params``, in order (Keras ``get_weights``)."""
        return [backend.to_numpy(p).copy() for p in self.params]

    def set_weights(self, weights) -> None:
        params = self.params
        if len(weights) != len(params):
            raise ValueError(f"layer '{self.name}' ({type(self).__name__}) has {len(params)} weights, "
                             f"got {len(weights)}")
        for i, (p, w) in enumerate(zip(params, weights)):
            w = np.asarray(w) if not hasattr(w, "__cuda_array_interface__") else w
            if tuple(w.shape) != tuple(p.shape):
                raise ShapeError(f"layer '{self.name}' ({type(self).__name__}): weight {i} has shape "
                                 f"{tuple(p.shape)}, got {tuple(w.shape)}")
            p[...] = backend.xp.asarray(w, dtype=p.dtype)

    def zero_grads(self) -> None:
        for g in self.grads:
            g[...] = 0

    # ---- modes ----------------------------------------------------------------------------
    def train(self, mode: bool = True):
        """Training mode on (dropout active) or off; recursive. Returns self."""
        self.training = mode
        for layer in self.sublayers:
            layer.train(mode)
        return self

    def eval(self):
        return self.train(False)

    # ---- building -------------------------------------------------------------------------
    def build(self, input_shape: tuple) -> None:
        """Create the weights for inputs of ``input_shape`` (batch axis excluded)."""
        self.input_shape = tuple(input_shape)
        self.built = True

    def maybe_build(self, x) -> None:
        if not self.built:
            self.build(tuple(x.shape[1:]))

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return tuple(input_shape)

    # ---- computation ----------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, x, **kwargs):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    # ---- config ---------------------------------------------------------------------------
    def get_config(self) -> dict:
        """Constructor arguments, JSON-serialisable; ``from_config`` rebuilds the layer."""
        config = {"name": self.name, "trainable": self.trainable}
        if self.seed is not None:
            config["seed"] = self.seed
        return config

    @classmethod
    def from_config(cls, config: dict):
        return cls(**config)

    def describe(self) -> str:
        return f"layer '{self.name}' ({type(self).__name__})"

    # ---- input checks (errors name the layer and the shapes) ------------------------------
    def check_input(self, x, ndim: int | None = None, last_dim: int | None = None,
                    what: str = "input", layout: str = "") -> None:
        shape = tuple(x.shape)
        if ndim is not None and len(shape) != ndim:
            raise ShapeError(f"{self.describe()}: expected a {ndim}-D {what}{' ' + layout if layout else ''}, "
                             f"got shape {shape}")
        if last_dim is not None and shape[-1] != last_dim:
            raise ShapeError(f"{self.describe()}: expected {what} with {last_dim} features on the last axis "
                             f"(built for input shape {self.input_shape}), got shape {shape}")

    def check_dtype(self, x, what: str = "input", kinds: str = "fiu") -> None:
        """x must be an array of real numbers (dtype kind in ``kinds``): a complex, object,
        string or boolean array is refused here, naming the layer and the dtype."""
        validate.array_dtype(self.describe(), what, x, kinds)

    def check_mask(self, mask, shape: tuple, what: str = "mask", context: str = ""):
        """A (B, T) mask as a bool array: bool, or integers/floats holding only 0 and 1.

        ``shape`` is the expected (B, T); ``context`` ends the shape message (e.g. the input's
        shape). Returns the bool array (on the current backend)."""
        xp = backend.xp
        mask = xp.asarray(mask)
        validate.array_dtype(self.describe(), what, mask, "bfiu")
        if tuple(mask.shape) != tuple(shape):
            raise ShapeError(f"{self.describe()}: {what} must have shape (batch, time) = {tuple(shape)}"
                             f"{context}, got {tuple(mask.shape)}")
        if mask.dtype.kind != "b":
            if mask.size and not bool(((mask == 0) | (mask == 1)).all()):
                raise validate.ArgumentError(f"{self.describe()}: a {mask.dtype} {what} must hold only 0 and 1 "
                                             f"(True = a real step), got other values")
            mask = mask != 0
        return mask

    def check_lengths(self, lengths, batch: int, steps: int, context: str = ""):
        """(B,) integer lengths in [0, steps], as an array on the current backend."""
        xp = backend.xp
        lengths = xp.asarray(lengths)
        if tuple(lengths.shape) != (batch,):
            raise ShapeError(f"{self.describe()}: lengths must have shape (batch,) = ({batch},){context}, "
                             f"got {tuple(lengths.shape)}")
        validate.array_dtype(self.describe(), "lengths", lengths, "iu")
        if batch and (int(lengths.min()) < 0 or int(lengths.max()) > steps):
            raise validate.ArgumentError(
                f"{self.describe()}: lengths must lie in [0, {steps}]{context}, got range "
                f"[{int(lengths.min())}, {int(lengths.max())}]")
        return lengths

    def check_finite(self, x, what: str = "input") -> None:
        if x.dtype.kind == "f" and not bool(backend.xp.isfinite(x).all()):
            raise ValueError(f"{self.describe()}: {what} of shape {tuple(x.shape)} contains NaN or inf")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def layer_to_dict(layer: Layer) -> dict:
    return {"class_name": type(layer).__name__, "config": layer.get_config()}


def layer_from_dict(spec: dict) -> Layer:
    """Rebuild a layer from ``{"class_name": ..., "config": {...}}`` (no code is executed)."""
    if not isinstance(spec, dict) or not isinstance(spec.get("config", {}), dict):
        raise ValueError(f"a layer config is {{'class_name': ..., 'config': {{...}}}}, got {str(spec)[:80]!r}")
    name = spec.get("class_name")
    if not isinstance(name, str) or name not in LAYER_CLASSES:
        raise ValueError(f"unknown layer class {str(name)[:80]!r} in config; known: {sorted(LAYER_CLASSES)}")
    return LAYER_CLASSES[name].from_config(dict(spec.get("config", {})))
