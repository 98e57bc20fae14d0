"""The step equations of the three recurrences, forward and backward, written once.

Pure functions on arrays: no layer, no state kept. The cells (``cells.py``), the plain
unrolled loops over time (``bptt.py``) and the step-by-step decoder of ``models/seq2seq.py``
all call these; the fast whole-sequence loops (``fast/loops.py``, ``fast/fused.py``) compute the
same equations and the tests prove them equal to these.

Every step takes its input already projected, ``xz = x W + b_in`` (B, G*H): the caller decides
whether that is one GEMM per step or one for all steps. It returns the new states and a
``cache`` for its backward. A backward step takes dL/d(new states) (output and carried
gradients already summed) and returns

    dxz (B, G*H)            dL/dxz: then dW = x^T dxz, db_in = sum_B dxz, dx = dxz W^T
    dstates_prev            dL/d(previous states), a list like ``states``
    dU (H, G*H)             this step's recurrent-kernel gradient (sum it over the steps)
    db_rec (G*H,) or None   the recurrent bias's gradient (GRU with reset_after only)

Weights in the Keras layout: U (H, G*H) with G gate blocks side by side (LSTM i, f, c, o;
GRU z, r, h). Shapes: B batch, H units.
"""
from __future__ import annotations

from .. import backend
from .core import ACTIVATIONS, sigmoid

RNN_ACTIVATIONS = ("tanh", "relu", "sigmoid", "linear")


# ---- SimpleRNN ----------------------------------------------------------------------------------
def rnn_step(xz, h, U, activation="tanh"):
    """h' = f(a),  a = xz + h U.  Returns h', cache."""
    h_new = ACTIVATIONS[activation][0](xz + h @ U)
    return h_new, (h, h_new)


def rnn_step_backward(dh_new, cache, U, activation="tanh"):
    """da = dh' * f'(a) (from the output: tanh 1 - h'^2, sigmoid h'(1 - h'), relu [h' > 0]);
    dh = da U^T,  dU = h^T da.  Returns dxz = da, dh, dU."""
    h, h_new = cache
    da = ACTIVATIONS[activation][1](h_new, dh_new)
    return da, da @ U.T, h.T @ da


# ---- LSTM -----------------------------------------------------------------------------------------
def lstm_step(xz, h, c, U):
    """z = xz + h U split into z_i, z_f, z_c, z_o:
        i = s(z_i), f = s(z_f), g = tanh(z_c), o = s(z_o)        (s = sigmoid)
        c' = f c + i g,   h' = o tanh(c')
    Returns h', c', cache."""
    xp = backend.xp
    H = h.shape[1]
    z = xz + h @ U
    i, f, o = sigmoid(z[:, :H]), sigmoid(z[:, H:2 * H]), sigmoid(z[:, 3 * H:])
    g = xp.tanh(z[:, 2 * H:3 * H])
    c_new = f * c + i * g
    tc = xp.tanh(c_new)
    return o * tc, c_new, (h, c, i, f, g, o, tc)


def lstm_step_backward(dh_new, dc_new, cache, U):
    """dc  = dc' + dh' o (1 - tanh(c')^2)
    dz = [dc g i(1 - i),  dc c f(1 - f),  dc i (1 - g^2),  dh' tanh(c') o(1 - o)]
    dh = dz U^T,  dc_prev = dc f,  dU = h^T dz.   Returns dxz = dz, dh, dc_prev, dU."""
    xp = backend.xp
    h, c, i, f, g, o, tc = cache
    dc = dc_new + dh_new * o * (1.0 - tc * tc)
    dz = xp.concatenate([dc * g * i * (1.0 - i), dc * c * f * (1.0 - f),
                         dc * i * (1.0 - g * g), dh_new * tc * o * (1.0 - o)], axis=1)
    return dz, dz @ U.T, dc * f, h.T @ dz


# ---- GRU ------------------------------------------------------------------------------------------
def gru_step(xz, h, U, b_rec=None):
    """Gates z, r, candidate hh; ``b_rec`` given: reset_after=True (the PyTorch/cuDNN form)
        hz = h U + b_rec,  z = s(xz_z + hz_z),  r = s(xz_r + hz_r),  hh = tanh(xz_h + r hz_h)
    ``b_rec`` None: reset_after=False (the original form)
        z = s(xz_z + h U_z),  r = s(xz_r + h U_r),  hh = tanh(xz_h + (r h) U_h)
    and in both  h' = z h + (1 - z) hh.  Returns h', cache."""
    xp = backend.xp
    H = h.shape[1]
    if b_rec is not None:
        hz = h @ U + b_rec
        z = sigmoid(xz[:, :H] + hz[:, :H])
        r = sigmoid(xz[:, H:2 * H] + hz[:, H:2 * H])
        hh = xp.tanh(xz[:, 2 * H:] + r * hz[:, 2 * H:])
        cache = (h, z, r, hh, hz[:, 2 * H:], None)
    else:
        hzr = h @ U[:, :2 * H]
        z = sigmoid(xz[:, :H] + hzr[:, :H])
        r = sigmoid(xz[:, H:2 * H] + hzr[:, H:])
        rh = r * h
        hh = xp.tanh(xz[:, 2 * H:] + rh @ U[:, 2 * H:])
        cache = (h, z, r, hh, None, rh)
    return z * h + (1.0 - z) * hh, cache


def gru_step_backward(dh_new, cache, U):
    """da_h = dh' (1 - z)(1 - hh^2),  da_z = dh' (h - hh) z(1 - z), then
    reset_after:   da_r = da_h hz_h r(1 - r),  dxz = [da_z, da_r, da_h],
                   dhz = [da_z, da_r, da_h r],  dU = h^T dhz,  db_rec = sum_B dhz,
                   dh = dh' z + dhz U^T;
    reset_before:  d(rh) = da_h U_h^T,  da_r = d(rh) h r(1 - r),  dxz = [da_z, da_r, da_h],
                   dU = [h^T [da_z, da_r],  (r h)^T da_h],
                   dh = dh' z + d(rh) r + [da_z, da_r] U_zr^T.
    Returns dxz, dh, dU, db_rec (None for reset_before)."""
    xp = backend.xp
    h, z, r, hh, hz_h, rh = cache
    H = h.shape[1]
    da_h = dh_new * (1.0 - z) * (1.0 - hh * hh)
    da_z = dh_new * (h - hh) * z * (1.0 - z)
    if hz_h is not None:
        da_r = da_h * hz_h * r * (1.0 - r)
        dxz = xp.concatenate([da_z, da_r, da_h], axis=1)
        dhz = xp.concatenate([da_z, da_r, da_h * r], axis=1)
        return dxz, dh_new * z + dhz @ U.T, h.T @ dhz, dhz.sum(axis=0)
    drh = da_h @ U[:, 2 * H:].T
    da_r = drh * h * r * (1.0 - r)
    dxz = xp.concatenate([da_z, da_r, da_h], axis=1)
    dU = xp.concatenate([h.T @ dxz[:, :2 * H], rh.T @ da_h], axis=1)
    dh = dh_new * z + drh * r + dxz[:, :2 * H] @ U[:, :2 * H].T
    return dxz, dh, dU, None


# ---- any kind, by name: what a generic loop (a cell, the seq2seq decoder) calls ---------------------
def step(kind, xz, states, U, activation="tanh", b_rec=None):
    """One step of ``kind`` ("rnn", "lstm", "gru"): returns (new states list, cache)."""
    if kind == "lstm":
        h, c, cache = lstm_step(xz, states[0], states[1], U)
        return [h, c], cache
    if kind == "gru":
        h, cache = gru_step(xz, states[0], U, b_rec)
    else:
        h, cache = rnn_step(xz, states[0], U, activation)
    return [h], cache


def step_backward(kind, dstates, cache, U, activation="tanh"):
    """Backward of ``step``: returns (dxz, dstates_prev list, dU, db_rec or None)."""
    if kind == "lstm":
        dxz, dh, dc, dU = lstm_step_backward(dstates[0], dstates[1], cache, U)
        return dxz, [dh, dc], dU, None
    if kind == "gru":
        dxz, dh, dU, db_rec = gru_step_backward(dstates[0], cache, U)
        return dxz, [dh], dU, db_rec
    dxz, dh, dU = rnn_step_backward(dstates[0], cache, U, activation)
    return dxz, [dh], dU, None
