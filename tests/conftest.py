"""Shared fixtures. Helpers for gradient checks and parity live in tests/gradcheck.py."""
from __future__ import annotations

import os

import pytest

import rnnlab
from rnnlab import backend

# The thread policy (rnnlab.threads) picks one thread on a busy machine: the tests, which check
# the two-thread paths too, must not depend on the load (tests/test_threads.py tests the policy).
os.environ.setdefault("RNNLAB_THREADS", "2")


@pytest.fixture
def float64():
    """Run the test with float64 parameters and data, then restore the previous floatx."""
    previous = backend.floatx()
    rnnlab.set_floatx("float64")
    yield
    rnnlab.set_floatx(previous)


@pytest.fixture(params=["reference", "numpy", "fused",
                        pytest.param("compiled", marks=pytest.mark.slow)])   # compiled: opt-in
def both_kernel_paths(request, monkeypatch):
    """Run the test on each loop of the recurrent layers: the reference loop (``bptt.ReferenceLoop``,
    the speed package switched off), and the fast loops of ``rnnlab.layers.fast``: NumPy, the
    fused numba step kernels called once per step, and the compiled loops (``compiled.py``: all
    steps of the fused path in one call). LSTM and GRU with reset_after have all four; the
    other layers run their NumPy fast loops on the last three. (The name is older than the
    third and fourth paths.)"""
    from gradcheck import require_numba
    from rnnlab.layers import fast

    monkeypatch.setattr(fast, "_enabled", request.param != "reference")
    if request.param in ("fused", "compiled"):
        require_numba()
    if request.param == "compiled" and not fast.compiled.available():
        if os.environ.get("CI"):
            raise ImportError(f"CI must test the compiled loops, but {fast.compiled.missing()}")
        pytest.skip(f"compiled loops: {fast.compiled.missing()}")
    monkeypatch.setattr(fast.FastLoop, "FUSED", request.param in ("fused", "compiled"))
    monkeypatch.setattr(fast.FastLoop, "COMPILED", request.param == "compiled")
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
