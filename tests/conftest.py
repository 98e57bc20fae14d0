"""Shared fixtures. Helpers for gradient checks and parity live in tests/gradcheck.py."""
from __future__ import annotations

import pytest

import rnnlab
from rnnlab import backend


@pytest.fixture
def float64():
    """Run the test with float64 parameters and data, then restore the previous floatx."""
    previous = backend.floatx()
    rnnlab.set_floatx("float64")
    yield
    rnnlab.set_floatx(previous)
