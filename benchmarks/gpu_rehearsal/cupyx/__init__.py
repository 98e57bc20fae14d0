"""The ``cupyx.scatter_add`` of the NumPy stand-in for CuPy (see ../cupy/__init__.py)."""
from __future__ import annotations

import numpy


def scatter_add(a, indices, values):
    numpy.add.at(a, indices, values)
