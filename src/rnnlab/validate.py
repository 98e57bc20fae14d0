"""Shared checks of what a user (or a file) hands in: one function per kind of value.

Every check takes the *owner* (who is asking: a layer class ``"LSTM"``, a flag ``"--units"``,
a file ``"config.yaml:12"``), the argument's *name* and its *value*, and either returns the value
in canonical form or raises an error whose message names all three::

    positive_int("LSTM", "units", 2.5)
    ValueError: LSTM: units must be a positive integer, got 2.5

Conventions, the same everywhere:

- integers: Python ``int`` or any NumPy integer type (returned as ``int``); ``bool`` is *not*
  an integer (``LSTM(True)`` is a mistake), nor is ``2.0`` or ``"8"``;
- a wrong *type* raises ``TypeError``... except that users catch ``ValueError`` for "bad
  argument", so every error here is an ``ArgumentError``, which is both a ``ValueError`` and
  a ``TypeError``: ``except ValueError`` and ``except TypeError`` both catch it;
- floats: ``int``/``float``/NumPy reals, finite (no NaN, no inf), returned as ``float``.

The array checks (``array_dtype``) name the dtype a layer refused, before NumPy fails deep
inside a matrix product with a message about ufuncs.
"""
from __future__ import annotations

import math
import numbers

import numpy as np


class ArgumentError(ValueError, TypeError):
    """A bad argument or input: ``ValueError`` and ``TypeError`` both catch it."""


def fail(owner: str, message: str):
    """Raise the ``ArgumentError`` of every check: ``"OWNER: message"`` (just the message without an owner)."""
    raise ArgumentError(f"{owner}: {message}" if owner else message)


def _is_int(value) -> bool:
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))


# ---- scalars ----------------------------------------------------------------------------------------
def integer(owner: str, name: str, value, low: int | None = None, high: int | None = None) -> int:
    """An integer in [low, high] (either bound optional), as ``int``."""
    if not _is_int(value):
        what = "an integer" if low is None else f"an integer >= {low}"
        fail(owner, f"{name} must be {what}, got {value!r} ({type(value).__name__})")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else str(low)
        hi = "inf" if high is None else str(high)
        fail(owner, f"{name} must be an integer in [{lo}, {hi}], got {value}")
    return value


def positive_int(owner: str, name: str, value) -> int:
    """An integer >= 1 (units, sizes, layer counts), as ``int``."""
    if not _is_int(value) or int(value) < 1:
        fail(owner, f"{name} must be a positive integer, got {value!r}")
    return int(value)


def optional_positive_int(owner: str, name: str, value) -> int | None:
    """None, or a positive integer."""
    return None if value is None else positive_int(owner, name, value)


def non_negative_int(owner: str, name: str, value) -> int:
    """An integer >= 0 (token ids, counts), as ``int``."""
    if not _is_int(value) or int(value) < 0:
        fail(owner, f"{name} must be a non-negative integer, got {value!r}")
    return int(value)


def finite_float(owner: str, name: str, value, low: float | None = None, high: float | None = None,
                 low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number (in [low, high], each end open when asked), as ``float``."""
    if not _is_real(value) or not math.isfinite(float(value)):
        fail(owner, f"{name} must be a finite number, got {value!r}")
    value = float(value)
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "(-inf" if low is None else f"{'(' if low_open else '['}{low:g}"
        hi = "inf)" if high is None else f"{high:g}{')' if high_open else ']'}"
        fail(owner, f"{name} must lie in {lo}, {hi}, got {value:g}")
    return value


def positive_float(owner: str, name: str, value) -> float:
    """A finite number > 0 (a learning rate, a time budget), as ``float``."""
    return finite_float(owner, name, value, 0.0, low_open=True)


def non_negative_float(owner: str, name: str, value) -> float:
    """A finite number >= 0 (a clipping norm, 0 = off; a length penalty), as ``float``."""
    return finite_float(owner, name, value, 0.0)


def decay_factor(owner: str, name: str, value) -> float:
    """A learning-rate decay factor in (0, 1] (1: constant), as ``float``."""
    return finite_float(owner, name, value, 0.0, 1.0, low_open=True)


def rate(owner: str, name: str, value) -> float:
    """A dropout-like rate in [0, 1), as ``float``."""
    return finite_float(owner, name, value, 0.0, 1.0, high_open=True)


def fractions(owner: str, name: str, values, count: int = 3) -> tuple[float, ...]:
    """``count`` finite fractions >= 0 that sum to 1 (within 1e-6), as floats: a split such as
    (0.9, 0.05, 0.05), or the same as text, "0.9,0.05,0.05". Never renormalised: (0.5, 0.6, 0.1)
    is a mistake, not 45/55/9 percent."""
    try:
        parts = tuple(float(v) for v in (values.split(",") if isinstance(values, str) else values))
    except (TypeError, ValueError):
        parts = ()
    if len(parts) != count or not all(np.isfinite(p) for p in parts):
        fail(owner, f"{name} must be {count} fractions (e.g. 0.8, 0.1, 0.1), got {values!r}")
    if any(p < 0 for p in parts) or abs(sum(parts) - 1.0) > 1e-6:
        fail(owner, f"{name} fractions must be >= 0 and sum to 1, got {values!r} (sum {sum(parts):g})")
    return parts


def flag(owner: str, name: str, value) -> bool:
    """A boolean (``True``/``False``, or a NumPy bool): ``"no"`` or ``2`` is a mistake, not True."""
    if not isinstance(value, (bool, np.bool_)):
        fail(owner, f"{name} must be True or False, got {value!r}")
    return bool(value)


def choice(owner: str, name: str, value, options):
    """One of ``options`` (compared with ==; strings exactly, no case folding)."""
    options = tuple(options)
    if isinstance(value, (list, dict, set)) or value not in options:
        fail(owner, f"{name} must be one of {', '.join(str(o) for o in options)}, got {value!r}")
    return value


def cell(owner: str, name: str, value) -> str:
    """A recurrent cell kind ("rnn", "lstm", "gru", or an alias such as "SimpleRNN"), through
    the one table ``layers/kinds.py``; returns the kind."""
    from .layers import kinds

    if not isinstance(value, str):
        fail(owner, f"{name} must be a cell name ({', '.join(kinds.KINDS)}), got {value!r}")
    try:
        return kinds.cell_kind(value)
    except ValueError as err:
        fail(owner, f"{name}: {err}")


def seed(owner: str, value, name: str = "seed") -> int | None:
    """None, or a non-negative integer (what ``np.random.default_rng`` accepts), as ``int``."""
    return None if value is None else non_negative_int(owner, name, value)


def text(owner: str, name: str, value, optional: bool = True) -> str | None:
    """A non-empty string (None allowed when optional)."""
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        fail(owner, f"{name} must be a non-empty string, got {value!r}")
    return value


def options(owner: str, name: str, value) -> dict | None:
    """A dict of keyword arguments (a copy), or None for none."""
    if value is not None and not isinstance(value, dict):
        fail(owner, f"{name} must be a dict of the cell's arguments, got {value!r}")
    return dict(value) if value else None


def initializer(owner: str, name: str, value):
    """An initializer spec (a name such as "orthogonal" or "uniform:0.1", a callable, or None),
    checked now rather than when the layer builds; returns the spec unchanged."""
    from . import initializers

    if value is None or callable(value):
        return value
    if not isinstance(value, str):
        fail(owner, f"{name} must be an initializer name or a callable, got {value!r}")
    try:
        initializers.get(value)
    except ValueError as err:   # an unknown name, or a scale that is not a number ("uniform:x")
        message = str(err) if repr(value) in str(err) else f"{value!r}: {err}"
        fail(owner, f"{name}: {message}")
    return value


# ---- arrays -----------------------------------------------------------------------------------------
_KIND_NAMES = {"f": "floating-point", "i": "integer", "u": "integer", "b": "boolean", "c": "complex",
               "O": "object", "U": "string", "S": "bytes", "V": "structured", "M": "datetime",
               "m": "timedelta"}


def array_dtype(owner: str, what: str, x, kinds: str = "fiu"):
    """Check that ``x`` is an array (NumPy or CuPy) whose dtype kind is one of ``kinds``
    (``"f"`` float, ``"i"``/``"u"`` integers, ``"b"`` bool); returns x."""
    dtype = getattr(x, "dtype", None)
    if dtype is None or not hasattr(x, "shape"):
        fail(owner, f"{what} must be an array, got {type(x).__name__}")
    if dtype.kind not in kinds:
        wanted = " or ".join(dict.fromkeys(_KIND_NAMES[k] for k in kinds))
        fail(owner, f"{what} must hold {wanted} numbers, got dtype {dtype} "
                     f"({_KIND_NAMES.get(dtype.kind, 'unsupported')}) with shape {tuple(x.shape)}")
    return x
