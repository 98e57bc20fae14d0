"""The fast form of Dense's products (``core.Dense`` holds the plain one): the bias inside the GEMM.

At build (hook "dense_build"), a Dense layer with a bias gets ``kernel`` and ``bias`` as the two
parts of one (D+1, U) array [W; b] (and their gradients of one [dW; db]); the public params and
config do not change. When the output is wider than the input (U > D, e.g. the decoder of a
language model), forward (hook "dense_forward") multiplies [x, 1] @ [W; b], so the bias is
added inside the GEMM rather than by a pass over the (N, U) output, and backward (hook
"dense_backward") gets [dW; db] = [x, 1]^T dh as one GEMM (timings in benchmarks/README.md).
Copying x next to a column of ones costs N D, the bias pass N U: narrower outputs keep h += b,
with the bias gradient as one GEMV, 1^T dh (a strided sum over rows is slower).
"""
from __future__ import annotations

from ... import backend
from .base import ones_vector


class StackedDense:
    """A Dense layer's [W; b] and [dW; db], and the [x, 1] buffer kept between calls."""

    def __init__(self, layer):
        xp = backend.xp
        D = layer.kernel.shape[0]
        self.Wb = xp.empty((D + 1, layer.units), dtype=layer.kernel.dtype)
        self.Wb[:D], self.Wb[D] = layer.kernel, layer.bias
        self.dWb = xp.zeros_like(self.Wb)
        layer.kernel, layer.bias = layer._params[0], layer._params[1] = self.Wb[:D], self.Wb[D]
        layer._grads[0], layer._grads[1] = self.dWb[:D], self.dWb[D]
        self.x_ones = None
        self.with_ones = False   # whether the last forward multiplied [x, 1] @ [W; b]

    def ones_column(self, x2):
        """[x, 1] (N, D+1), in a buffer kept between calls."""
        N, D = x2.shape
        buf = self.x_ones
        if buf is None or buf.shape != (N, D + 1) or buf.dtype != x2.dtype or not isinstance(buf, backend.xp.ndarray):
            buf = self.x_ones = backend.xp.empty((N, D + 1), dtype=x2.dtype)
            buf[:, D] = 1.0
        buf[:, :D] = x2
        return buf


def _stacked(layer):
    from . import enabled

    return layer.__dict__.get("_stacked_dense") if enabled() else None


def build(layer):
    """Stack a built Dense layer's kernel and bias (module docstring); None where it does not apply."""
    from . import enabled

    if not enabled() or not layer.use_bias:
        return None
    layer._stacked_dense = StackedDense(layer)
    return True


def forward(layer, x2):
    """h = x2 W + b (N, U) for x2 (N, D), or None where this form does not apply."""
    stacked = _stacked(layer)
    if stacked is None:
        return None
    stacked.with_ones = layer.units > x2.shape[1]
    if stacked.with_ones:
        return stacked.ones_column(x2) @ stacked.Wb          # x W + b, the bias inside the GEMM
    h = x2 @ layer.kernel
    h += layer.bias
    return h


def backward(layer, x2, dh):
    """Writes dW and db for dh (N, U) after ``forward``; None where this form does not apply."""
    xp = backend.xp
    stacked = _stacked(layer)
    if stacked is None:
        return None
    if stacked.with_ones:
        xp.matmul(stacked.x_ones.T, dh, out=stacked.dWb)     # [x, 1]^T dh = [dW; db]
    else:
        xp.matmul(x2.T, dh, out=layer._grads[0])              # out=: no (D, U) temporary to copy
        xp.matmul(ones_vector(dh.shape[0], dh.dtype), dh, out=layer._grads[1])
    return True
