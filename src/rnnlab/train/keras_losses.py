"""Keras's loss and metric names for ``model.compile`` (train/fit.py), and the losses they need.

    loss, fused_layer = resolve_loss("binary_crossentropy", model)
    metrics = resolve_metrics(["accuracy", "mae"], "binary_crossentropy")

**Probabilities or logits.** Keras's ``binary_crossentropy`` and ``(sparse_)categorical_
crossentropy`` take probabilities (``from_logits=False``): the model ends in
``Dense(1, activation="sigmoid")`` or ``Dense(k, activation="softmax")``. Computing log p from
a saturated p loses everything (p = 1.0 exactly in float32 for z > 17), so, as Keras 3 does
when it finds the logits behind a sigmoid or softmax output, rnnlab **fuses** the final
activation into the loss: while fit/evaluate run, the last layer's activation is switched to
``linear`` and the loss is computed from the logits z with the stable forms

    BCE:  max(z, 0) - z y + log(1 + exp(-|z|)),      dL/dz = (sigmoid(z) - y) / count
    CE:   logsumexp(z) - sum_j y_j z_j / sum_j y_j ... dL/dz = (softmax(z) sum_j y_j - y) / count

(``losses.SigmoidBCE``, ``losses.SoftmaxCrossEntropy`` and ``SoftmaxSoftCrossEntropy`` here).
The fused layer is the model's last layer (descending into a nested Sequential) when it is a
``Dense`` or ``Activation`` with the matching activation. For any other model (a custom
``Model`` whose output is a probability), the loss is computed on the probabilities with
Keras's clipping to [eps, 1 - eps], eps = 1e-7 (``ProbabilityBCE``, ``ProbabilityCrossEntropy``):
the same values as Keras, and zero gradient where a probability is clipped, as in Keras.
A loss *object* (``losses.SigmoidBCE()``, anything with ``forward(out, y, mask)`` and
``backward()``) is applied to the model's output as it is (e.g. logits of a custom model).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .. import losses as rl_losses
from ..layers.core import log_softmax, sigmoid, softmax

EPSILON = 1e-7  # Keras's backend.epsilon(): the clipping of probabilities

# Keras name -> canonical name (the aliases Keras itself accepts)
LOSS_NAMES = {
    "mse": "mse", "mean_squared_error": "mse",
    "mae": "mae", "mean_absolute_error": "mae",
    "binary_crossentropy": "binary_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
    "categorical_crossentropy": "categorical_crossentropy",
}
# the final activation each cross-entropy can be fused with
FUSABLE = {"binary_crossentropy": "sigmoid", "sparse_categorical_crossentropy": "softmax",
           "categorical_crossentropy": "softmax"}


class ProbabilityBCE:
    """Keras's binary cross-entropy on probabilities p (clipped to [eps, 1 - eps]):

        L = mean of -(y log p_c + (1 - y) log(1 - p_c)),   p_c = clip(p, eps, 1 - eps)
        dL/dp = (p_c - y) / (p_c (1 - p_c)) / count  where p is inside the clip range, else 0.
    """

    def __init__(self, epsilon: float = EPSILON):
        self.epsilon = epsilon
        self.count = 0
        self._cache = None

    def forward(self, probs, targets, mask=None) -> float:
        xp = backend.xp
        if tuple(probs.shape) != tuple(targets.shape):
            raise ValueError(f"binary_crossentropy: predictions of shape {tuple(probs.shape)} and targets of "
                             f"shape {tuple(targets.shape)} must match")
        m, count = rl_losses._broadcast_mask("binary_crossentropy", mask, probs.shape)
        y = targets.astype(probs.dtype, copy=False)
        p = xp.clip(probs, self.epsilon, 1.0 - self.epsilon)
        elem = -(y * xp.log(p) + (1.0 - y) * xp.log1p(-p))
        if m is not None:
            elem = elem * m
        self.count = count
        self._cache = (probs, p, y, m)
        return float(elem.sum(dtype=np.float64)) / count if count else 0.0

    def backward(self):
        probs, p, y, m = self._cache
        inside = (probs > self.epsilon) & (probs < 1.0 - self.epsilon)
        d = (p - y) / (p * (1.0 - p)) * inside
        if m is not None:
            d = d * m
        return d * ((1.0 / self.count) if self.count else 0.0)

    __call__ = forward


class ProbabilityCrossEntropy:
    """Keras's (sparse) categorical cross-entropy on probabilities p (..., K): Keras first
    renormalises, q = p / S with S = sum_k p_k, then clips q to [eps, 1 - eps]:

        L = mean over positions of -sum_k y_k log q_c,k       (sparse: y = onehot(t))
        g_k = -y_k / q_c,k where q_k is inside the clip range, else 0      (dL/dq per position)
        dL/dp_k = (g_k - sum_j g_j q_j) / S / count
    """

    def __init__(self, sparse: bool, epsilon: float = EPSILON):
        self.sparse = sparse
        self.epsilon = epsilon
        self.count = 0
        self._cache = None

    def forward(self, probs, targets, mask=None) -> float:
        xp = backend.xp
        y = _class_targets(probs, targets, self.sparse)
        m, count = _position_mask(mask, probs.shape[:-1])
        S = probs.sum(axis=-1, keepdims=True)
        q = probs / S
        qc = xp.clip(q, self.epsilon, 1.0 - self.epsilon)
        per_position = -(y * xp.log(qc)).sum(axis=-1)
        if m is not None:
            per_position = per_position * m
        self.count = count
        self._cache = (q, qc, y, S, m)
        return float(per_position.sum(dtype=np.float64)) / count if count else 0.0

    def backward(self):
        q, qc, y, S, m = self._cache
        inside = (q > self.epsilon) & (q < 1.0 - self.epsilon)
        g = -y / qc * inside
        d = (g - (g * q).sum(axis=-1, keepdims=True)) / S
        if m is not None:
            d = d * m[..., None]
        return d * ((1.0 / self.count) if self.count else 0.0)

    __call__ = forward


class SoftmaxSoftCrossEntropy:
    """Categorical cross-entropy from logits z (..., K) with target distributions y (..., K)
    (one-hot or soft), per position: L = -sum_k y_k log softmax(z)_k;
    dL/dz = (softmax(z) sum_k y_k - y) / count."""

    def __init__(self):
        self.count = 0
        self._cache = None

    def forward(self, logits, targets, mask=None) -> float:
        y = _class_targets(logits, targets, sparse=False)
        m, count = _position_mask(mask, logits.shape[:-1])
        logp = log_softmax(logits)
        per_position = -(y * logp).sum(axis=-1)
        if m is not None:
            per_position = per_position * m
        self.count = count
        self._cache = (logp, y, m)
        return float(per_position.sum(dtype=np.float64)) / count if count else 0.0

    def backward(self):
        logp, y, m = self._cache
        d = backend.xp.exp(logp) * y.sum(axis=-1, keepdims=True) - y
        if m is not None:
            d = d * m[..., None]
        return d * ((1.0 / self.count) if self.count else 0.0)

    __call__ = forward


class MAE:
    """Mean absolute error: L = mean |yhat - y|; dL/dyhat = sign(yhat - y) / count."""

    def __init__(self):
        self.count = 0
        self._cache = None

    def forward(self, predictions, targets, mask=None) -> float:
        if tuple(predictions.shape) != tuple(targets.shape):
            raise ValueError(f"mae: predictions of shape {tuple(predictions.shape)} and targets of shape "
                             f"{tuple(targets.shape)} must match")
        m, count = rl_losses._broadcast_mask("mae", mask, predictions.shape)
        diff = predictions - targets.astype(predictions.dtype, copy=False)
        if m is not None:
            diff = diff * m
        self.count = count
        self._cache = diff
        return float(backend.xp.abs(diff).sum(dtype=np.float64)) / count if count else 0.0

    def backward(self):
        return backend.xp.sign(self._cache) * ((1.0 / self.count) if self.count else 0.0)

    __call__ = forward


def _class_targets(out, targets, sparse: bool):
    """Targets as distributions (..., K) of ``out``'s dtype: one-hot of integer ids when sparse."""
    xp = backend.xp
    name = "sparse_categorical_crossentropy" if sparse else "categorical_crossentropy"
    K = out.shape[-1]
    if sparse:
        if tuple(targets.shape) != tuple(out.shape[:-1]):
            raise ValueError(f"{name}: predictions of shape {tuple(out.shape)} need integer targets of shape "
                             f"{tuple(out.shape[:-1])}, got {tuple(targets.shape)}")
        t = targets.astype(np.int64)
        if t.size and (int(t.min()) < 0 or int(t.max()) >= K):
            raise ValueError(f"{name}: class ids must lie in [0, {K}), got range [{int(t.min())}, {int(t.max())}]")
        return (xp.arange(K) == t[..., None]).astype(out.dtype)
    if tuple(targets.shape) != tuple(out.shape):
        raise ValueError(f"{name}: predictions of shape {tuple(out.shape)} need one-hot targets of the same "
                         f"shape, got {tuple(targets.shape)} (integer class ids: use "
                         f"sparse_categorical_crossentropy)")
    return targets.astype(out.dtype, copy=False)


def _position_mask(mask, shape):
    """The mask over positions (bool, ``shape``) and how many positions count."""
    if mask is None:
        return None, int(np.prod(shape)) if len(shape) else 1
    if tuple(mask.shape) != tuple(shape):
        raise ValueError(f"loss mask has shape {tuple(mask.shape)}, expected {tuple(shape)}")
    m = mask if mask.dtype == bool else mask != 0
    return m, int(m.sum())


# ---- loss resolution ------------------------------------------------------------------------


def final_activation_layer(model, activation: str):
    """The layer whose ``activation`` ends ``model`` when it is ``activation`` (a Dense or an
    Activation, the last layer of a Sequential, nested Sequentials followed down), else None."""
    from ..layers.core import Activation, Dense
    from ..models.base import Sequential

    layer = model
    while isinstance(layer, Sequential):
        if not layer.sublayers:
            return None
        layer = layer.sublayers[-1]
    if isinstance(layer, (Dense, Activation)) and layer.activation == activation:
        return layer
    return None


def resolve_loss(loss, model):
    """(name, loss object, fused layer or None, sparse targets?) for compile's ``loss``."""
    if isinstance(loss, str):
        key = LOSS_NAMES.get(loss.lower())
        if key is None:
            raise ValueError(f"compile(loss={loss!r}): unknown loss; known: {', '.join(sorted(LOSS_NAMES))}, "
                             f"or a loss object (rnnlab.losses)")
        fused = final_activation_layer(model, FUSABLE[key]) if key in FUSABLE else None
        if key == "mse":
            obj = rl_losses.MSE()
        elif key == "mae":
            obj = MAE()
        elif key == "binary_crossentropy":
            obj = rl_losses.SigmoidBCE() if fused is not None else ProbabilityBCE()
        elif key == "sparse_categorical_crossentropy":
            obj = rl_losses.SoftmaxCrossEntropy() if fused is not None else ProbabilityCrossEntropy(sparse=True)
        else:
            obj = SoftmaxSoftCrossEntropy() if fused is not None else ProbabilityCrossEntropy(sparse=False)
        return key, obj, fused
    if callable(getattr(loss, "forward", None)) and callable(getattr(loss, "backward", None)):
        return type(loss).__name__, loss, None
    raise TypeError(f"compile(loss=...): expected a loss name ({', '.join(sorted(LOSS_NAMES))}) or an object "
                    f"with forward(outputs, targets, mask) and backward(), got {type(loss).__name__}")


def to_probabilities(out, fused_activation: str | None):
    """The model's outputs as the unfused model gives them (apply the fused activation)."""
    if fused_activation == "sigmoid":
        return sigmoid(out)
    if fused_activation == "softmax":
        return softmax(out)
    return out


# ---- metrics ----------------------------------------------------------------------------------

METRIC_NAMES = ("accuracy", "acc", "binary_accuracy", "sparse_categorical_accuracy", "categorical_accuracy",
                "mae", "mean_absolute_error", "mse", "mean_squared_error")


def resolve_metrics(metrics, loss_key: str) -> list:
    """[(history name, f(probs, y, mask) -> (sum, count))] for compile's ``metrics``."""
    if metrics is None:
        return []
    if isinstance(metrics, (str, bytes)) or not hasattr(metrics, "__iter__"):
        raise TypeError(f"compile(metrics={metrics!r}): expected a list, e.g. metrics=['accuracy']")
    out, seen = [], set()
    for m in metrics:
        if isinstance(m, str):
            key = m.lower()
            if key not in METRIC_NAMES:
                raise ValueError(f"compile(metrics=[..., {m!r}, ...]): unknown metric; known: "
                                 f"{', '.join(METRIC_NAMES)}, or a function f(y_true, y_pred) -> float")
            fn = _metric_function(key, loss_key)
            name = m
        elif callable(m):
            fn, name = _mean_of(m), getattr(m, "__name__", type(m).__name__)
        else:
            raise TypeError(f"compile(metrics=[..., {m!r}, ...]): a metric is a name or a function")
        if name in seen:
            raise ValueError(f"compile(metrics=...): {name!r} is given twice")
        seen.add(name)
        out.append((name, fn))
    return out


def _metric_function(key: str, loss_key: str):
    if key in ("mae", "mean_absolute_error"):
        return _elementwise(lambda p, y: backend.xp.abs(p - y))
    if key in ("mse", "mean_squared_error"):
        return _elementwise(lambda p, y: (p - y) ** 2)
    if key in ("accuracy", "acc"):
        key = {"binary_crossentropy": "binary_accuracy", "categorical_crossentropy": "categorical_accuracy"
               }.get(loss_key, "auto")
    return {"binary_accuracy": _binary_accuracy, "sparse_categorical_accuracy": _sparse_accuracy,
            "categorical_accuracy": _categorical_accuracy, "auto": _auto_accuracy}[key]


def _elementwise(f):
    def metric(p, y, mask):
        y = y.astype(p.dtype, copy=False).reshape(p.shape)
        values = f(p, y)
        m, count = rl_losses._broadcast_mask("metric", mask, p.shape)
        if m is not None:
            values = values * m
        return float(values.sum(dtype=np.float64)), count
    return metric


def _binary_accuracy(p, y, mask):
    return _elementwise(lambda p, y: ((p > 0.5) == (y > 0.5)).astype(p.dtype))(p, y, mask)


def _positions(hits, mask):
    if mask is not None:
        return float((hits & mask).sum()), int(mask.sum())
    return float(hits.sum()), int(hits.size)


def _sparse_accuracy(p, y, mask):
    y = y.reshape(p.shape[:-1])
    return _positions(p.argmax(axis=-1) == y, mask)


def _categorical_accuracy(p, y, mask):
    return _positions(p.argmax(axis=-1) == y.argmax(axis=-1), mask)


def _auto_accuracy(p, y, mask):
    """Keras's "accuracy" without a cross-entropy to go by: binary for one output unit,
    sparse for integer ids one axis short of the outputs, categorical otherwise."""
    if p.shape[-1] == 1:
        return _binary_accuracy(p, y, mask)
    if y.ndim == p.ndim - 1 or (y.ndim == p.ndim and y.shape[-1] == 1):
        return _sparse_accuracy(p, y, mask)
    return _categorical_accuracy(p, y, mask)


def _mean_of(fn):
    """A user metric f(y_true, y_pred) -> mean value, weighted by the batch size."""
    def metric(p, y, mask):
        return float(fn(y, p)) * p.shape[0], p.shape[0]
    return metric
