"""NumPy dressed as CuPy, for rehearsing the CuPy code path on a machine without a GPU.

    PYTHONPATH=benchmarks/gpu_rehearsal:src RNNLAB_BACKEND=cupy python -m pytest -q tests/test_bench.py

Every attribute rnnlab asks of ``cupy`` that NumPy has is NumPy's; the few CuPy-only ones
(``asnumpy``, ``get_array_module``, ``cuda.Device().synchronize()``, the device properties)
are stand-ins that do nothing on the GPU, because there is none. It proves that the CuPy
branches of rnnlab and of ``benchmarks/gpu_check.sh --dry-run`` run and produce their files;
it measures nothing about a GPU (``__version__`` and the device name say so in every result).
Only ``gpu_check.sh --dry-run`` and tests/test_bench.py put this folder on the path.
"""
from __future__ import annotations

import types

import numpy

__version__ = "0+numpy-stand-in"
STAND_IN = True


def asnumpy(a):
    return numpy.asarray(a)


def get_array_module(*arrays):
    return numpy


class _Device:
    id = 0

    def __init__(self, device_id: int = 0):
        self.id = device_id

    def synchronize(self) -> None:
        """Nothing is queued on a device that does not exist."""


cuda = types.SimpleNamespace(
    Device=_Device,
    runtime=types.SimpleNamespace(getDeviceCount=lambda: 0,
                                  getDeviceProperties=lambda device_id: {"name": b"NumPy stand-in (no GPU)"}),
)


def __getattr__(name):
    # everything else (asarray, zeros, tanh, random, linalg, float32, ...) is NumPy's
    return getattr(numpy, name)
