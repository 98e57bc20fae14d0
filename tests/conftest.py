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


@pytest.fixture(params=["numpy", "fused"])
def both_kernel_paths(request, monkeypatch):
    """Run the test once with the recurrent layers' NumPy loops and once with the fused numba
    kernels (LSTM, and GRU with reset_after; the other layers have only the NumPy loops)."""
    from gradcheck import require_numba
    from rnnlab.layers.recurrent import _Recurrent

    if request.param == "fused":
        require_numba()
    monkeypatch.setattr(_Recurrent, "FUSED", request.param == "fused")
    return request.param


@pytest.fixture
def word_text(tmp_path):
    """A small seeded UTF-8 corpus (tmp_path/abc.txt, 60 lines of 4 two-word phrases) for tiny
    language-model runs."""
    import numpy as np

    path = tmp_path / "abc.txt"
    rng = np.random.default_rng(0)
    words = ["the cat", "a dog", "sat on", "the mat", "and ran", "away"]
    path.write_text("\n".join(" ".join(rng.choice(words, 4)) for _ in range(60)), encoding="utf-8")
    return path
