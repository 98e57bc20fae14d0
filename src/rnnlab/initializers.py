"""Weight initializers, Keras defaults by name.

Each takes a shape and returns a host-side ``numpy`` array drawn from ``rng`` (a
``numpy.random.Generator``); layers cast it to ``floatx`` and move it to the backend. Drawing on
the host keeps results identical on NumPy and CuPy for the same seed.

- ``glorot_uniform``: U(-a, a), a = sqrt(6 / (fan_in + fan_out))  (Keras kernel default)
- ``orthogonal``: Q from the QR of a Gaussian matrix, sign-fixed  (Keras recurrent default)
- ``uniform(scale)``: U(-scale, scale)  (Zaremba et al.'s PTB models use 0.1 / 0.05)
- ``zeros``, ``ones``, ``normal(std)``
"""
from __future__ import annotations

import numpy as np

_default_rng = np.random.default_rng(0)


def seed(value: int) -> None:
    """Reseed the generator used when a layer is built without an explicit ``rng``."""
    global _default_rng
    _default_rng = np.random.default_rng(value)


def default_rng() -> np.random.Generator:
    return _default_rng


def _fans(shape):
    if len(shape) < 2:
        return shape[0], shape[0]
    receptive = int(np.prod(shape[:-2])) if len(shape) > 2 else 1
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_uniform(shape, rng=None):
    rng = rng or _default_rng
    fan_in, fan_out = _fans(shape)
    limit = np.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape)


def orthogonal(shape, rng=None, gain=1.0):
    """Orthogonal rows or columns (whichever is fewer), as Keras ``Orthogonal``."""
    rng = rng or _default_rng
    rows, cols = shape[0], int(np.prod(shape[1:]))
    a = rng.normal(0.0, 1.0, size=(max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return gain * q.reshape(shape)


def zeros(shape, rng=None):
    return np.zeros(shape)


def ones(shape, rng=None):
    return np.ones(shape)


def uniform(scale):
    """Initializer drawing U(-scale, scale)."""
    def init(shape, rng=None):
        return (rng or _default_rng).uniform(-scale, scale, size=shape)
    init.__name__ = f"uniform({scale})"
    return init


def normal(std):
    def init(shape, rng=None):
        return (rng or _default_rng).normal(0.0, std, size=shape)
    init.__name__ = f"normal({std})"
    return init


_BY_NAME = {"glorot_uniform": glorot_uniform, "orthogonal": orthogonal, "zeros": zeros, "ones": ones}


def get(spec):
    """An initializer from a name (``"orthogonal"``, ``"uniform:0.1"``), a callable, or None."""
    if spec is None or callable(spec):
        return spec
    if isinstance(spec, str):
        if spec in _BY_NAME:
            return _BY_NAME[spec]
        kind, _, arg = spec.partition(":")
        if kind == "uniform" and arg:
            return uniform(float(arg))
        if kind == "normal" and arg:
            return normal(float(arg))
    raise ValueError(f"unknown initializer {spec!r}: use one of {sorted(_BY_NAME)}, 'uniform:S' or 'normal:S'")
