"""Feed-forward layers: Input, Dense, Embedding, Flatten, Dropout, Activation.

Shapes: B batch, T time, D input features, U units, V vocabulary, E embedding size.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .. import validate
from . import hook
from .base import Layer, ShapeError, is_planning

# ---- activations: forward, and derivative expressed through the output y ----------------


def sigmoid(x):
    """s(x) = 1 / (1 + exp(-x)), computed as 0.5 tanh(x / 2) + 0.5: no overflow for large |x|.
    The library's one sigmoid (the recurrent cells' gates, the Dense activation)."""
    xp = backend.xp
    return 0.5 * (xp.tanh(0.5 * x) + 1.0)


def softmax(x):
    """softmax over the last axis, exp(x - max) / sum exp(x - max): the shift keeps exp in
    range and leaves the result unchanged. The library's one softmax (Dense, attention)."""
    xp = backend.xp
    e = xp.exp(x - x.max(axis=-1, keepdims=True))
    e /= e.sum(axis=-1, keepdims=True)
    return e


def log_softmax(x, axis: int = -1):
    """log softmax(x) = x - max - log(sum(exp(x - max))), stable for any magnitude of x."""
    xp = backend.xp
    shifted = x - x.max(axis=axis, keepdims=True)
    lse = xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))
    shifted -= lse
    return shifted


def _softmax_backward(y, dy):
    return y * (dy - (dy * y).sum(axis=-1, keepdims=True))


ACTIVATIONS = {
    # name: (f(x), dL/dx from (y, dL/dy))
    "linear": (lambda x: x, lambda y, dy: dy),
    "tanh": (lambda x: backend.xp.tanh(x), lambda y, dy: dy * (1.0 - y * y)),
    "sigmoid": (sigmoid, lambda y, dy: dy * y * (1.0 - y)),
    "relu": (lambda x: backend.xp.maximum(x, 0), lambda y, dy: dy * (y > 0)),
    "softmax": (softmax, _softmax_backward),
}


def _activation(name, owner: str = ""):
    """The activation's name (None: "linear"); an unknown one is an error naming ``owner``."""
    return validate.choice(owner, "activation", name or "linear", sorted(ACTIVATIONS))


class Input(Layer):
    """Declares the input shape (batch excluded) of a ``Sequential`` model; passes x through.

    ``Input((20, 6))`` means inputs of shape (B, 20, 6). A ``None`` time length accepts any T.
    """

    def __init__(self, shape, **kwargs):
        super().__init__(**kwargs)
        if isinstance(shape, (str, bytes)) or not hasattr(shape, "__iter__"):
            raise validate.ArgumentError(f"Input: shape must be a tuple of sizes (batch excluded), got {shape!r}")
        self.shape = tuple(validate.optional_positive_int("Input", f"shape[{i}]", s) for i, s in enumerate(shape))

    def forward(self, x, **kwargs):
        self.check_dtype(x, kinds="fiub")
        expected = self.shape
        if x.ndim != len(expected) + 1 or any(e is not None and e != s for e, s in zip(expected, x.shape[1:])):
            raise ShapeError(f"{self.describe()}: expected input shape (batch, {', '.join(map(str, expected))}), "
                             f"got {tuple(x.shape)}")
        return x

    def backward(self, dout):
        return dout

    def compute_output_shape(self, input_shape):
        return self.shape

    def get_config(self):
        return {**super().get_config(), "shape": list(self.shape)}


class Dense(Layer):
    """y = f(x W + b) on the last axis: (..., D) -> (..., U), so it acts on every time step.

    Weights: ``kernel`` (D, U), ``bias`` (U,).  With h = x W + b and y = f(h):
    dW = x^T dh, db = sum over rows of dh, dx = dh W^T, dh = f'(h) * dy.

    The speed package has a faster form of the products (``layers/fast/dense.py``: kernel and
    bias as views of one [W; b], the bias added inside the GEMM), asked for through
    ``layers/hook.py``; the tests hold the two equal.
    """

    def __init__(self, units: int, activation: str | None = None, use_bias: bool = True,
                 kernel_initializer="glorot_uniform", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.units = validate.positive_int("Dense", "units", units)
        self.activation = _activation(activation, "Dense")
        self.use_bias = validate.flag("Dense", "use_bias", use_bias)
        self.kernel_initializer = validate.initializer("Dense", "kernel_initializer", kernel_initializer)
        self.bias_initializer = validate.initializer("Dense", "bias_initializer", bias_initializer)

    def build(self, input_shape):
        super().build(input_shape)
        self.kernel = self.add_weight("kernel", (input_shape[-1], self.units), self.kernel_initializer)
        if self.use_bias:
            self.bias = self.add_weight("bias", (self.units,), self.bias_initializer)
            if not is_planning():  # a planned layer allocates nothing
                hook.fast_form("dense_build", self)

    def forward(self, x, **kwargs):
        self.check_dtype(x)
        self.maybe_build(x)
        if x.ndim < 2:
            raise ShapeError(f"{self.describe()}: expected input of shape (batch, ..., features), got {tuple(x.shape)}")
        self.check_input(x, last_dim=self.kernel.shape[0])
        self.check_finite(x)
        x2 = x.reshape(-1, x.shape[-1])
        h = hook.fast_form("dense_forward", self, x2)
        if h is None:
            h = x2 @ self.kernel
            if self.use_bias:
                h = h + self.bias
        y = ACTIVATIONS[self.activation][0](h)
        self.cache = (x.shape, x2, y)
        return y.reshape(*x.shape[:-1], self.units)

    def backward(self, dout):
        x_shape, x2, y = self.cache
        dh = ACTIVATIONS[self.activation][1](y, dout.reshape(-1, self.units))
        if not hook.fast_form("dense_backward", self, x2, dh):
            self._grads[0][...] = x2.T @ dh
            if self.use_bias:
                self._grads[1][...] = dh.sum(axis=0)
        return (dh @ self.kernel.T).reshape(x_shape)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units, "activation": self.activation,
                "use_bias": self.use_bias, "kernel_initializer": _init_name(self.kernel_initializer),
                "bias_initializer": _init_name(self.bias_initializer)}


class Embedding(Layer):
    """Integer ids (B, T) -> vectors (B, T, E): row lookup in ``embeddings`` (V, E).

    Backward: dW[v] = sum of dout over every position holding id v: for a small vocabulary
    (characters) one GEMM, onehot(ids)^T dout; otherwise sorted segment sums (not
    ``np.add.at``, which is slow). The input has no gradient; ``backward`` returns None.
    ``mask_zero=True`` marks id 0 as padding: ``compute_mask(ids)`` gives ids != 0.
    """

    ONE_HOT_MAX_IDS = 512   # up to this vocabulary size, the one-hot GEMM beats the segment sums

    def __init__(self, input_dim: int, output_dim: int, embeddings_initializer="uniform:0.05",
                 mask_zero: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = validate.positive_int("Embedding", "input_dim", input_dim)
        self.output_dim = validate.positive_int("Embedding", "output_dim", output_dim)
        self.embeddings_initializer = validate.initializer("Embedding", "embeddings_initializer",
                                                           embeddings_initializer)
        self.mask_zero = validate.flag("Embedding", "mask_zero", mask_zero)

    def build(self, input_shape):
        super().build(input_shape)
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer)

    def forward(self, ids, **kwargs):
        self.check_dtype(ids, "token ids", kinds="iu")   # ids only: a float or bool array is a mistake
        self.maybe_build(ids)
        if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= self.input_dim):
            raise ValueError(f"{self.describe()}: token ids must lie in [0, {self.input_dim}), got range "
                             f"[{int(ids.min())}, {int(ids.max())}] in input of shape {tuple(ids.shape)}")
        self.ids = ids
        return self.embeddings[ids]

    def backward(self, dout):
        xp = backend.xp
        dW = self._grads[0]
        flat = self.ids.ravel()
        d = dout.reshape(-1, self.output_dim)
        if self.input_dim <= self.ONE_HOT_MAX_IDS:
            onehot = xp.zeros((flat.size, self.input_dim), dtype=dW.dtype)
            onehot[xp.arange(flat.size), flat] = 1
            xp.matmul(onehot.T, d, out=dW)       # overwrites dW: no zeroing needed
            return None
        dW[...] = 0
        if backend.backend_name() == "cupy":  # pragma: no cover - GPU only
            import cupyx
            cupyx.scatter_add(dW, flat, d)
            return None
        order = np.argsort(flat, kind="stable")
        ids_sorted = flat[order]
        starts = np.flatnonzero(np.concatenate(([True], ids_sorted[1:] != ids_sorted[:-1])))
        dW[ids_sorted[starts]] = np.add.reduceat(xp.asarray(d)[order], starts, axis=0)
        return None

    def compute_mask(self, ids):
        return (ids != 0) if self.mask_zero else None

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": _init_name(self.embeddings_initializer), "mask_zero": self.mask_zero}


class Flatten(Layer):
    """(B, d1, d2, ...) -> (B, d1*d2*...). No weights."""

    def forward(self, x, **kwargs):
        self.maybe_build(x)
        self.x_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dout):
        return dout.reshape(self.x_shape)

    def compute_output_shape(self, input_shape):
        return (int(np.prod(input_shape)),)


class Dropout(Layer):
    """Inverted dropout: in training, y = x * m / (1 - rate), m ~ Bernoulli(1 - rate); else y = x.

    ``noise_shape`` as in Keras: e.g. (None, 1, None) on (B, T, D) draws one mask per sequence
    and feature, shared over time (variational dropout).
    """

    def __init__(self, rate: float, noise_shape=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = validate.rate("Dropout", "rate", rate)
        if noise_shape is not None:
            if isinstance(noise_shape, (str, bytes)) or not hasattr(noise_shape, "__iter__"):
                raise validate.ArgumentError(f"Dropout: noise_shape must be a tuple of sizes or None, "
                                             f"got {noise_shape!r}")
            noise_shape = tuple(validate.optional_positive_int("Dropout", f"noise_shape[{i}]", n)
                                for i, n in enumerate(noise_shape))
        self.noise_shape = noise_shape
        self._gen = None
        self.mask = None

    def _generator(self):
        if self._gen is None:
            self._gen = backend.xp.random.default_rng(self.seed)
        return self._gen

    def forward(self, x, **kwargs):
        self.check_dtype(x)
        self.maybe_build(x)
        if not self.training or self.rate == 0.0:
            self.mask = None
            return x
        shape = x.shape if self.noise_shape is None else tuple(
            s if n is None else n for s, n in zip(x.shape, self.noise_shape))
        keep = self._generator().random(shape, dtype=np.float32) >= self.rate
        self.mask = keep.astype(x.dtype) / (1.0 - self.rate)
        return x * self.mask

    def backward(self, dout):
        return dout if self.mask is None else dout * self.mask

    def get_config(self):
        config = {**super().get_config(), "rate": self.rate}
        if self.noise_shape is not None:
            config["noise_shape"] = list(self.noise_shape)
        return config


class Activation(Layer):
    """Elementwise ``linear``, ``tanh``, ``sigmoid``, ``relu``, or ``softmax`` over the last axis."""

    def __init__(self, activation: str, **kwargs):
        super().__init__(**kwargs)
        self.activation = _activation(activation, "Activation")

    def forward(self, x, **kwargs):
        self.check_dtype(x)
        self.maybe_build(x)
        self.y = ACTIVATIONS[self.activation][0](x)
        return self.y

    def backward(self, dout):
        return ACTIVATIONS[self.activation][1](self.y, dout)

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


def _init_name(init):
    """Initializer as it is stored in a config: its name string."""
    return init if isinstance(init, str) else getattr(init, "__name__", str(init)).replace("(", ":").rstrip(")")
