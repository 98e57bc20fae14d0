"""rnnlab.layers.fast: one switch for all the speed machinery, reached from the readable modules
only through layers/hook.py; with the switch off every form is the plain one, and equal."""
import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnlab
from rnnlab import losses
from rnnlab.layers import LSTM, Dense, fast
from rnnlab.layers.bptt import ReferenceLoop

SRC = Path(__file__).resolve().parents[2] / "src" / "rnnlab"
READABLE = ["layers/recurrent.py", "layers/cells.py", "layers/steps.py", "layers/bptt.py", "layers/core.py",
            "layers/base.py", "layers/hook.py", "losses.py"]


@pytest.mark.parametrize("module", READABLE)
def test_readable_modules_do_not_import_the_speed_package(module):
    tree = ast.parse((SRC / module).read_text(encoding="utf-8"))
    imported = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            imported += [f"{node.module or ''}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
    assert not [name for name in imported if "fast" in name.split(".") or "numba" in name], imported


def test_the_switch_hands_out_the_reference_loop_when_off(monkeypatch):
    layer = LSTM(3)
    assert isinstance(layer.loop(), fast.FastLoop)
    fast.set_enabled(False)
    try:
        assert isinstance(layer.loop(), ReferenceLoop) and not fast.runs_fused(layer)
    finally:
        fast.set_enabled(None)
    monkeypatch.setenv("RNNLAB_FAST", "0")
    assert not fast.enabled() and isinstance(layer.loop(), ReferenceLoop)


def test_rnnlab_fast_0_in_a_new_process():
    env = {**os.environ, "PYTHONPATH": str(SRC.parent), "RNNLAB_FAST": "0"}
    code = "from rnnlab.layers import LSTM; print(type(LSTM(2).loop()).__name__)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ReferenceLoop", out.stderr


def _both_forms(monkeypatch, run):
    """run() with the speed package on, then off."""
    monkeypatch.setattr(fast, "_enabled", True)
    on = run()
    monkeypatch.setattr(fast, "_enabled", False)
    return on, run()


@pytest.mark.parametrize("units,features", [(7, 3), (3, 7)])   # wider: [x, 1] @ [W; b]; narrower: h += b
def test_dense_plain_form_equals_the_fast_form(float64, monkeypatch, units, features):
    x = np.random.default_rng(0).standard_normal((4, 5, features))

    def run():
        layer = Dense(units, activation="tanh", seed=0)
        y = layer.forward(x)
        return [y, layer.backward(np.cos(y)), *layer.grads]
    for a, b in zip(*_both_forms(monkeypatch, run)):
        np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cross_entropy_plain_form_equals_the_fast_form(monkeypatch, dtype):
    rng = np.random.default_rng(1)
    z = (rng.standard_normal((6, 5, 40)) * 4).astype(dtype)
    z[0] += 100.0                                     # a row far from 0: shifted in every form
    t = rng.integers(0, 40, (6, 5))

    def run():
        loss = losses.SoftmaxCrossEntropy()
        return loss.forward(z, t), loss.backward().copy()
    (value, grad), (plain_value, plain_grad) = _both_forms(monkeypatch, run)
    tol = 1e-5 if dtype == "float32" else 1e-13
    assert plain_value == pytest.approx(value, rel=tol)
    np.testing.assert_allclose(plain_grad, grad, rtol=tol, atol=tol * 1e-3)
    assert plain_grad.dtype == rnnlab.backend.xp.dtype(dtype)
