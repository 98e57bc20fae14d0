"""Test helpers: numerical gradient checks and the torch requirement (import from tests)."""
from __future__ import annotations

import os

import numpy as np
import pytest


def require_torch():
    """Import torch for a parity test. Outside CI a missing torch skips the test with a reason;
    in CI (CI=true) it is an error, because parity must always run there."""
    try:
        import torch
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("PyTorch is not installed: parity tests need `pip install torch==2.13.0` (CPU build)")
    torch.set_default_dtype(torch.float64)
    return torch


def require_numba():
    """The fused LSTM and GRU kernels need numba: outside CI a missing numba skips the test with a reason;
    in CI it is an error (the test extra installs it, so both LSTM paths always run there)."""
    from rnnlab.layers.fast import fused

    if fused.numba is None:
        if os.environ.get("CI"):
            raise ImportError("numba is not installed, but CI must test the fused LSTM and GRU kernels")
        pytest.skip("numba is not installed: the fused LSTM and GRU kernels need `pip install numba`")
    return fused


def numerical_grad(f, array, eps=1e-6):
    """Central differences of the scalar f() with respect to every entry of ``array`` (in place)."""
    assert array.flags.c_contiguous, "numerical_grad perturbs a flat view: the array must be C-contiguous"
    grad = np.zeros(array.shape, dtype=np.float64)
    flat, gflat = array.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        plus = f()
        flat[i] = old - eps
        minus = f()
        flat[i] = old
        gflat[i] = (plus - minus) / (2 * eps)
    return grad


def rel_error(a, b):
    """||a - b|| / max(||a|| + ||b||, tiny): the figure the quality bar holds below 1e-6."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    denom = max(np.linalg.norm(a) + np.linalg.norm(b), 1e-12)
    return float(np.linalg.norm(a - b) / denom)


def check_layer_gradients(layer, x, forward_kwargs=None, seed=0, tol=1e-6, check_input=True):
    """Gradient check of ``layer`` at input ``x`` for L = sum(forward(x) * R), R random.

    Compares every parameter gradient and (for float inputs) dL/dx with central differences.
    Returns the dict of relative errors so a test can assert on them and print them.
    """
    kwargs = forward_kwargs or {}
    out = layer.forward(x, **kwargs)
    outs = out if isinstance(out, tuple) else (out,)
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(o.shape) for o in outs]

    def loss():
        res = layer.forward(x, **kwargs)
        res = res if isinstance(res, tuple) else (res,)
        return float(sum((r * w).sum() for r, w in zip(res, weights)))

    loss()
    dx = layer.backward(weights[0]) if len(weights) == 1 else layer.backward(weights[0], weights[1:])
    analytic = [g.copy() for g in layer.grads]
    errors = {}
    for i, p in enumerate(layer.params):
        errors[f"param{i}"] = rel_error(analytic[i], numerical_grad(loss, p))
    if check_input and x.dtype.kind == "f" and dx is not None:
        errors["input"] = rel_error(dx, numerical_grad(loss, x))
    worst = max(errors.values()) if errors else 0.0
    assert worst < tol, f"{layer.describe()}: gradient check failed {errors}"
    return errors
