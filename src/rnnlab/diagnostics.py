"""Tools that show vanishing and exploding gradients.

In a recurrent layer the gradient that reaches step t from the last step T is a product of
T - t Jacobians, dh_T/dh_t = prod_k diag(f'(a_k)) U^T.  Its size is governed by the recurrent
matrix U: when U's largest singular value times max|f'| is below 1 the product shrinks
geometrically (vanishing gradients, Bengio et al. 1994; Pascanu et al. 2013), and when U's
singular values are large it can grow (exploding gradients, which clipping tames).

- ``gradient_norm_per_step(layer, x)``: ||dL/dx_t|| for every step t when the loss looks only
  at the layer's last output: how much the last step still "hears" from each earlier input.
- ``recurrent_singular_values(layer)``: singular values of the recurrent kernel, per gate
  block for LSTM and GRU.
"""
from __future__ import annotations

import numpy as np

from . import backend
from .layers import kinds

GATE_NAMES = {"rnn": ("h",), "lstm": ("i", "f", "c", "o"), "gru": ("z", "r", "h")}


def gradient_norm_per_step(layer, x, seed: int = 0) -> np.ndarray:
    """Norm over batch and features of dL/dx_t for each t, with L = <r, h_T> for a random r.

    ``layer`` is a recurrent layer built with ``return_sequences=False`` (the default), ``x``
    is (B, T, D). Returns a NumPy array of T norms; plot it on a log scale to see the decay.
    """
    if getattr(layer, "return_sequences", False) or getattr(layer, "return_state", False):
        raise ValueError(f"{layer.describe()}: gradient_norm_per_step needs return_sequences=False "
                         f"and return_state=False (the loss reads only the last output)")
    h_last = layer.forward(x)
    r = np.random.default_rng(seed).standard_normal(h_last.shape).astype(h_last.dtype)
    dx = layer.backward(backend.xp.asarray(r))
    dx = backend.to_numpy(dx)
    return np.sqrt((dx.astype(np.float64) ** 2).sum(axis=(0, 2)))


def recurrent_singular_values(layer) -> dict[str, np.ndarray]:
    """Singular values of each gate block of the recurrent kernel U (H, G*H), largest first."""
    try:
        kind = kinds.cell_kind(layer)
    except ValueError:
        raise TypeError(f"{layer!r} is not a SimpleRNN, LSTM or GRU layer or cell") from None
    u = backend.to_numpy(layer.recurrent_kernel).astype(np.float64)
    units = u.shape[0]
    return {gate: np.linalg.svd(u[:, i * units:(i + 1) * units], compute_uv=False)
            for i, gate in enumerate(GATE_NAMES[kind])}
