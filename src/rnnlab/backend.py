"""The array module every layer computes with: NumPy on the CPU, CuPy on a GPU.

All array math in rnnlab goes through ``backend.xp`` (read at call time, never bound at
import time), so the same code runs on both. Pick the backend once, before building models:

    import rnnlab
    rnnlab.set_backend("cupy")          # or RNNLAB_BACKEND=cupy in the environment
    rnnlab.set_floatx("float64")        # gradient checks; float32 is the default

``to_numpy`` brings any array back to host NumPy (for saving, printing, plotting).
"""
from __future__ import annotations

import os

import numpy

xp = numpy
_name = "numpy"
_floatx = "float32"

_VALID_FLOATX = ("float16", "float32", "float64")


def set_backend(name: str) -> None:
    """Select ``"numpy"`` or ``"cupy"`` for all later computation."""
    global xp, _name
    if name == "numpy":
        xp, _name = numpy, "numpy"
    elif name == "cupy":
        try:
            import cupy
        except ImportError as err:  # pragma: no cover - needs a GPU machine
            raise RuntimeError(
                "backend 'cupy' needs CuPy: pip install 'rnnlab[gpu]' on a machine with CUDA"
            ) from err
        xp, _name = cupy, "cupy"
    else:
        raise ValueError(f"unknown backend {name!r}: use 'numpy' or 'cupy'")


def backend_name() -> str:
    return _name


def set_floatx(dtype: str) -> None:
    """Default float type of new parameters and of generated data."""
    global _floatx
    dtype = numpy.dtype(dtype).name
    if dtype not in _VALID_FLOATX:
        raise ValueError(f"floatx must be one of {_VALID_FLOATX}, got {dtype!r}")
    _floatx = dtype


def floatx() -> str:
    return _floatx


def to_numpy(a):
    """Host NumPy copy-or-view of ``a`` (a CuPy array is copied to the host)."""
    if _name == "cupy" and not isinstance(a, numpy.ndarray):
        return xp.asnumpy(a)
    return numpy.asarray(a)


def asarray(a, dtype=None):
    """``a`` as an array of the current backend (floats default to ``floatx()``)."""
    arr = xp.asarray(a)
    if dtype is None and arr.dtype.kind == "f":
        dtype = _floatx
    return arr.astype(dtype, copy=False) if dtype is not None else arr


def get_array_module(a):
    """NumPy or CuPy, whichever ``a`` belongs to (for code that takes arrays from either)."""
    if _name == "cupy":
        return xp.get_array_module(a)
    return numpy


set_backend(os.environ.get("RNNLAB_BACKEND", "numpy"))
if os.environ.get("RNNLAB_FLOATX"):
    set_floatx(os.environ["RNNLAB_FLOATX"])
