"""Recurrent layers over whole sequences: ``SimpleRNN``, ``LSTM``, ``GRU``, and ``Bidirectional``.

Each layer applies one set of weights at every time step (parameter sharing), so the same
layer runs on any sequence length T. The step equations are those of the cells in
``cells.py`` (the readable single-step reference; a test proves both agree to 1e-12).

Public contract (see docs/ARCHITECTURE.md, "Recurrent layers"):

    y = layer.forward(x, mask=None, initial_state=None, lengths=None)    x (B, T, D)
    dx = layer.backward(dy, dstates=None)                                 sets layer.dinitial_state

- ``return_sequences``: y is (B, T, H), else the last state (B, H).
- ``return_state``: forward returns ``(y, *states)`` (LSTM: h, c), and ``backward`` takes the
  gradients of those states in ``dstates`` (a list; None entries mean zero).
- ``mask`` (B, T) bool or ``lengths`` (B,): a masked step keeps the previous state and outputs
  zeros (as PyTorch packed sequences), so the last state is each sequence's last valid one.
- ``initial_state``: list of (B, H) arrays (zeros when None); ``backward`` leaves dL/d(initial
  states) in ``self.dinitial_state`` (an encoder-decoder passes it to the encoder).
- ``stateful=True``: the last state of a call is the initial state of the next (truncated BPTT:
  no gradient flows into it); ``reset_states()`` zeroes it.
- ``go_backwards=True``: processes the sequence from the last step to the first and returns
  the output sequence in that (reversed) order, as Keras.

**How the time loop is written for speed.** Internally everything is time-major and contiguous:
X (T, B, D+1), gates (T, B, G*H), states (T+1, B, H), all in buffers kept from one call to the
next (reallocated only when the shape changes). X carries a column of ones, so the input
projections of all steps, bias included, are one GEMM, (T*B, D+1) @ [W; b]; inside the loop
only h_{t-1} @ U remains (in whichever orientation, h U or (U^T h^T)^T, is faster for the shape
on this machine: ``_Recurrent._step_product``), written with ``out=`` into preallocated memory,
and the gate math runs in place on each step's views (handed out by iterating over the buffers,
which costs half of indexing them). Sigmoids use s(z) = 0.5 tanh(z / 2) + 0.5: the factor 1/2
is folded into [W; b] and U (an exact scaling by a power of two), so one ``tanh`` call covers
all four LSTM gates and two in-place ``*= alpha; += beta`` with per-column vectors turn the
sigmoid columns into s(z) and leave the tanh column as is. In backward, the derivative factors
(e.g. g i (1 - i)) are computed with whole-array operations over a block of steps just before
the loop reaches it (blocks of about 2^17 values, which stay in cache; GRU with
reset_after=False: all steps at once), the loop does only what needs the recurrence (a few
products and dz_t @ U^T, again in the faster orientation), and [dW; db] = X^T dZ (the ones
column gives db), dU = H_prev^T dZ and dX = dZ W^T are each one GEMM over all steps after it.
Arrays keep the parameters' dtype (float32 by default) throughout.

**Fused kernels.** When numba is installed (``pip install "rnnlab[fast]"``), LSTM and GRU
(reset_after=True) replace each step's elementwise calls, and in backward the factor passes
too, by one call of a compiled kernel from ``fused.py`` that reads every value once (the same
equations, on the same buffers; the products stay BLAS calls). ``FUSED = None`` (default) uses
them when numba imports, ``True``/``False`` forces; ``RNNLAB_FUSED=0`` switches them off. The
tests run every recurrent check on both paths.

Shapes: B batch, T time, D input features, H units, G gates (SimpleRNN 1, LSTM 4, GRU 3).
"""
from __future__ import annotations

import time

import numpy as np

from .. import backend
from . import fused
from .base import Layer, ShapeError, layer_from_dict, layer_to_dict, ones_vector, transpose_into
from .cells import RNN_ACTIVATIONS, c_order, lstm_bias_initializer
from .core import _init_name


class _Mask:
    """A (B, T) mask turned into what the time loops use, in time-major processing order.

    m (T, B, 1): 1.0 at real steps, 0.0 at masked ones; keep (T, B, 1) bool: the step is
    masked, so the state is kept; keepf: keep as floats; partial[t]: some row of step t is
    masked (the loops do the extra work only on such steps).
    """

    def __init__(self, mask_tb, dtype):
        xp = backend.xp
        self.m = mask_tb[..., None].astype(dtype)
        self.keep = ~mask_tb[..., None]
        self.keepf = self.keep.astype(dtype)
        self.partial = backend.to_numpy(~xp.all(mask_tb, axis=1)).tolist()


def _time_orientations(B, K, N, dtype, repeats=7) -> bool:
    """Whether (M^T a^T) beats a @ M by more than 5% for a (B, K), M (K, N): best of ``repeats``
    interleaved timings of each, after a warm-up (a few ms, once per shape)."""
    rng = np.random.default_rng(0)
    a, M = rng.standard_normal((B, K)).astype(dtype), rng.standard_normal((K, N)).astype(dtype)
    MT, out, outT = np.ascontiguousarray(M.T), np.empty((B, N), dtype), np.empty((N, B), dtype)
    plain, transposed = [], []
    for k in range(repeats + 2):
        t0 = time.perf_counter()
        np.matmul(a, M, out=out)
        t1 = time.perf_counter()
        np.matmul(MT, a.T, out=outT)
        out += outT.T
        t2 = time.perf_counter()
        if k >= 2:
            plain.append(t1 - t0)
            transposed.append(t2 - t1)
    return min(transposed) < 0.95 * min(plain)


class _Recurrent(Layer):
    """What SimpleRNN, LSTM and GRU share: arguments, weights, checks, states, layout changes.

    A subclass gives GATES, N_STATES and two loops over time-major buffers:
    ``_forward_loop(X, init, mk) -> (Hs, final_states)`` with X (T, B, D) and Hs (T+1, B, H)
    (Hs[0] the initial h), and ``_backward_loop(dH, dlast, mk) -> (dX, dinitial_states)``
    with dH (T, B, H) the gradient reaching each step's output (it may overwrite it) and
    ``dlast`` the gradients of the final states; it writes ``grads``.
    """

    GATES = 1
    N_STATES = 1
    FACTOR_BLOCK = 1 << 17   # gate values per block of steps in backward (about 512 KB in float32)
    TRANSPOSED_PRODUCTS = None  # per-step products: None = time both orientations once, or force True/False
    FUSED = None   # fused step kernels (fused.py) where a layer has them: None = when numba is installed
    PROJECTION_CHUNK = 1 << 18     # gate values per chunk of the input projection (1 MB in float32)
    PROJECTION_MIN_ROWS = 256      # smaller chunks are not worth it: one GEMM for all steps
    _orientation: dict = {}     # (B, K, N, dtype) -> whether the transposed product is faster

    def __init__(self, units: int, return_sequences: bool = False, return_state: bool = False,
                 go_backwards: bool = False, stateful: bool = False, kernel_initializer="glorot_uniform",
                 recurrent_initializer="orthogonal", bias_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        if int(units) < 1:
            raise ValueError(f"{type(self).__name__}: units must be >= 1, got {units}")
        self.units = int(units)
        self.return_sequences = bool(return_sequences)
        self.return_state = bool(return_state)
        self.go_backwards = bool(go_backwards)
        self.stateful = bool(stateful)
        self.kernel_initializer = kernel_initializer
        self.recurrent_initializer = recurrent_initializer
        self.bias_initializer = bias_initializer
        self.states = None          # the carried state of a stateful layer (None: zeros)
        self.dinitial_state = None  # set by backward
        self._cache = None
        self._buffers: dict = {}

    # ---- weights ------------------------------------------------------------------------------
    def _bias_shape(self):
        return (self.GATES * self.units,)

    def _bias_init(self):
        return self.bias_initializer

    def build(self, input_shape):
        if len(input_shape) != 2:
            raise ShapeError(f"{self.describe()}: expects inputs of shape (batch, time, features), i.e. a "
                             f"build shape (time, features); got {tuple(input_shape)}")
        super().build(input_shape)
        D, GH = int(input_shape[-1]), self.GATES * self.units
        rng = self._rng()  # one generator for all weights: no two weights share draws
        self.kernel = self.add_weight("kernel", (D, GH), c_order(self.kernel_initializer), rng)
        self.recurrent_kernel = self.add_weight("recurrent_kernel", (self.units, GH),
                                                c_order(self.recurrent_initializer), rng)
        self.bias = self.add_weight("bias", self._bias_shape(), c_order(self._bias_init()), rng)

    def compute_output_shape(self, input_shape):
        if len(input_shape) != 2:
            raise ShapeError(f"{self.describe()}: expects inputs of shape (batch, time, features), got a "
                             f"shape without batch of {tuple(input_shape)}")
        y = (input_shape[0], self.units) if self.return_sequences else (self.units,)
        if self.return_state:
            return [y] + [(self.units,)] * self.N_STATES
        return y

    def get_config(self):
        return {**super().get_config(), "units": self.units, "return_sequences": self.return_sequences,
                "return_state": self.return_state, "go_backwards": self.go_backwards, "stateful": self.stateful,
                "kernel_initializer": _init_name(self.kernel_initializer),
                "recurrent_initializer": _init_name(self.recurrent_initializer),
                "bias_initializer": _init_name(self.bias_initializer)}

    # ---- buffers kept between calls ---------------------------------------------------------------
    def _buf(self, name, shape, dtype=None):
        """A preallocated array for ``name``, reused while shape and dtype stay the same."""
        xp = backend.xp
        dtype = dtype or self.kernel.dtype
        shape = tuple(int(s) for s in shape)
        a = self._buffers.get(name)
        if a is None or a.shape != shape or a.dtype != dtype or not isinstance(a, xp.ndarray):
            a = xp.empty(shape, dtype=dtype)
            self._buffers[name] = a
        return a

    # ---- the per-step product, in the faster orientation -------------------------------------------
    def _step_product(self, name, M, B, accumulate=False):
        """A function ``product(a, out)`` for the recurrent product of every step, a (B, K) @ M (K, N):
        ``out += a @ M`` with ``accumulate``, else ``out[...] = a @ M``.

        It computes either a @ M or the transposed product (M^T a^T)^T. The BLAS packs its
        operands on every call, and with few rows (B <= 64) some CPUs run the second form much
        faster (AMD Zen 5, OpenBLAS 0.3.31: 64x512 @ 512x2048 456 -> 322 us, 20x2600 @ 2600x650
        412 -> 283 us) while others do not; so, like ``cudnn.benchmark``, both are timed once per
        shape and the faster is kept (``TRANSPOSED_PRODUCTS`` = True or False forces one). The
        price of the transposed form is a transposed add or copy of the (B, N) result.
        """
        xp = backend.xp
        K, N = M.shape
        if not self._transposed_is_faster(B, K, N, M.dtype):
            Mc = M if M.flags.c_contiguous else transpose_into(self._buf(name, (K, N)), M.T)
            if not accumulate:
                return lambda a, out: xp.matmul(a, Mc, out=out)
            tmp = self._buf(name + "_out", (B, N))

            def product(a, out):
                xp.matmul(a, Mc, out=tmp)
                out += tmp
            return product
        MT = M.T if M.T.flags.c_contiguous else transpose_into(self._buf(name + "T", (N, K)), M)
        tmpT = self._buf(name + "_outT", (N, B))

        def product_transposed(a, out):
            xp.matmul(MT, a.T, out=tmpT)
            if accumulate:
                out += tmpT.T
            else:
                out[...] = tmpT.T
        return product_transposed

    def _has_kernels(self) -> bool:
        """Whether fused.py has step kernels for this layer (LSTM; GRU with reset_after)."""
        return False

    def _fused(self, dtype) -> bool:
        """Whether the loops run the fused step kernels of ``fused.py`` (see ``FUSED``)."""
        if not self._has_kernels() or backend.backend_name() != "numpy" or \
                np.dtype(dtype) not in (np.float32, np.float64):
            return False
        if self.FUSED is None:
            return fused.available()
        if self.FUSED and fused.numba is None:
            raise RuntimeError(f"{self.describe()}: FUSED = True needs numba: pip install 'rnnlab[fast]'")
        return bool(self.FUSED)

    def _transposed_is_faster(self, B, K, N, dtype) -> bool:
        if self.TRANSPOSED_PRODUCTS is not None:
            return bool(self.TRANSPOSED_PRODUCTS)
        if backend.backend_name() != "numpy":
            return False
        key = (B, K, N, str(dtype))
        if key not in _Recurrent._orientation:
            _Recurrent._orientation[key] = _time_orientations(B, K, N, dtype)
        return _Recurrent._orientation[key]

    def _step_blocks(self, T, B):
        """(start, stop) of blocks of steps, last block first, each holding about FACTOR_BLOCK gate
        values (at least one step): backward computes a block's derivative factors just before
        its loop reaches them, while they are still in cache (all steps at once is ~1.7x slower
        at the char shape)."""
        block = max(1, self.FACTOR_BLOCK // (B * self.GATES * self.units))
        for stop in range(T, 0, -block):
            yield max(0, stop - block), stop

    # ---- states -----------------------------------------------------------------------------------
    def reset_states(self, states=None) -> None:
        """Zero the carried state of a stateful layer (or set it to ``states``: list of (B, H))."""
        if states is None:
            self.states = None
            return
        xp = backend.xp
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        if len(states) != self.N_STATES or any(s.ndim != 2 or s.shape[1] != self.units for s in states):
            raise ShapeError(f"{self.describe()}: reset_states expects {self.N_STATES} array(s) of shape "
                             f"(batch, {self.units}), got {[tuple(s.shape) for s in states]}")
        self.states = [xp.array(s, dtype=self.kernel.dtype) for s in states]

    def _initial_states(self, initial_state, x_shape):
        """The list of initial state arrays, or None for zeros."""
        xp = backend.xp
        B, H = x_shape[0], self.units
        if initial_state is None:
            if self.stateful and self.states is not None:
                if self.states[0].shape[0] != B:
                    raise ShapeError(f"{self.describe()}: stateful layer carries a state of shape "
                                     f"{tuple(self.states[0].shape)} but got input of shape {tuple(x_shape)} "
                                     f"(another batch size): call reset_states() first")
                return self.states
            return None
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(states) != self.N_STATES:
            raise ShapeError(f"{self.describe()}: initial_state must be a list of {self.N_STATES} array(s) of "
                             f"shape (batch, units) = {(B, H)}, got {len(states)}")
        for k, s in enumerate(states):
            s = xp.asarray(s)
            if tuple(s.shape) != (B, H):
                raise ShapeError(f"{self.describe()}: initial_state[{k}] must have shape (batch, units) = "
                                 f"{(B, H)} for input of shape {tuple(x_shape)}, got {tuple(s.shape)}")
            self.check_finite(s, what=f"initial_state[{k}]")
            states[k] = s
        return states

    @staticmethod
    def _set_initial(dst, init, k):
        if init is None:
            dst[...] = 0
        else:
            dst[...] = init[k]

    # ---- checks -----------------------------------------------------------------------------------
    def _check_x(self, x):
        if getattr(x, "ndim", None) != 3:
            shape = tuple(getattr(x, "shape", ()))
            hint = " (one sequence? add a batch axis: x[None])" if len(shape) == 2 else ""
            raise ShapeError(f"{self.describe()}: expected a 3-D input (batch, time, features), "
                             f"got shape {shape}{hint}")
        self.maybe_build(x)
        self.check_input(x, last_dim=self.kernel.shape[0])
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ShapeError(f"{self.describe()}: expected at least one sequence and one time step, "
                             f"got shape {tuple(x.shape)}")
        self.check_finite(x)

    def _make_mask(self, mask, lengths, x_shape):
        """The mask in processing order as a ``_Mask``, or None when every step is real."""
        xp = backend.xp
        B, T = x_shape[0], x_shape[1]
        if mask is not None and lengths is not None:
            raise ValueError(f"{self.describe()}: give a mask or lengths, not both")
        if lengths is not None:
            lengths = xp.asarray(lengths)
            if tuple(lengths.shape) != (B,):
                raise ShapeError(f"{self.describe()}: lengths must have shape (batch,) = ({B},) for input of "
                                 f"shape {tuple(x_shape)}, got {tuple(lengths.shape)}")
            if lengths.dtype.kind not in "iu":
                raise ValueError(f"{self.describe()}: lengths must be integers, got dtype {lengths.dtype}")
            if int(lengths.min()) < 0 or int(lengths.max()) > T:
                raise ValueError(f"{self.describe()}: lengths must lie in [0, {T}] for input of shape "
                                 f"{tuple(x_shape)}, got range [{int(lengths.min())}, {int(lengths.max())}]")
            mask = xp.arange(T)[None, :] < lengths[:, None]
        elif mask is not None:
            mask = xp.asarray(mask)
            if tuple(mask.shape) != (B, T):
                raise ShapeError(f"{self.describe()}: mask must have shape (batch, time) = {(B, T)} for input "
                                 f"of shape {tuple(x_shape)}, got {tuple(mask.shape)}")
            mask = mask.astype(bool)
        else:
            return None
        if bool(xp.all(mask)):
            return None
        if self.go_backwards:
            mask = mask[:, ::-1]
        return _Mask(xp.ascontiguousarray(mask.T), self.kernel.dtype)

    # ---- forward / backward -----------------------------------------------------------------------
    def forward(self, x, mask=None, initial_state=None, lengths=None):
        """x (B, T, D) -> y (B, T, H) or (B, H) [, *states]; see the module docstring."""
        xp = backend.xp
        self._check_x(x)
        B, T, D = x.shape
        mk = self._make_mask(mask, lengths, x.shape)
        init = self._initial_states(initial_state, x.shape)
        X = self._buf("X", (T, B, D + 1))     # x time-major, then a column of ones (see _project_inputs)
        X[:, :, :D] = (x[:, ::-1] if self.go_backwards else x).transpose(1, 0, 2)
        X[:, :, D] = 1.0
        Hs, final = self._forward_loop(X, init, mk)
        final = [s.copy() for s in final]
        self._cache = (x.shape, mk)
        if self.stateful:
            self.states = [s.copy() for s in final]
        if self.return_sequences:
            # y in processing order (reversed for go_backwards, as Keras); masked steps output 0
            y = xp.empty((B, T, self.units), dtype=Hs.dtype)
            if mk is None:
                y[...] = Hs[1:].transpose(1, 0, 2)
            else:
                xp.multiply(Hs[1:].transpose(1, 0, 2), mk.m.transpose(1, 0, 2), out=y)
        else:
            y = final[0].copy()
        if self.return_state:
            return (y, *final)
        return y

    def backward(self, dy, dstates=None):
        """dL/dy (and dL/d(final states)) -> dL/dx (B, T, D); writes grads and dinitial_state."""
        xp = backend.xp
        if self._cache is None:
            raise RuntimeError(f"{self.describe()}: backward called before forward")
        (B, T, D), mk = self._cache
        H = self.units
        expected = (B, T, H) if self.return_sequences else (B, H)
        if tuple(dy.shape) != expected:
            raise ShapeError(f"{self.describe()}: expected a gradient of shape {expected} (the output's), "
                             f"got {tuple(dy.shape)}")
        dH = self._buf("dH", (T, B, H))
        dlast = [self._buf(f"dlast{k}", (B, H)) for k in range(self.N_STATES)]
        for d in dlast:
            d[...] = 0
        if self.return_sequences:
            dH[...] = dy.transpose(1, 0, 2)
            if mk is not None:
                dH *= mk.m  # a masked step's output is the constant 0
        else:
            dH[...] = 0
            dlast[0] += dy
        if dstates is not None:
            dstates = list(dstates) if isinstance(dstates, (list, tuple)) else [dstates]
            if len(dstates) > self.N_STATES:
                raise ShapeError(f"{self.describe()}: got {len(dstates)} state gradients for "
                                 f"{self.N_STATES} state(s)")
            for k, d in enumerate(dstates):
                if d is None:
                    continue
                if tuple(d.shape) != (B, H):
                    raise ShapeError(f"{self.describe()}: dstates[{k}] must have shape (batch, units) = "
                                     f"{(B, H)}, got {tuple(d.shape)}")
                dlast[k] += d
        dX, dinit = self._backward_loop(dH, dlast, mk)
        dx = xp.empty((B, T, D), dtype=dX.dtype)
        (dx[:, ::-1] if self.go_backwards else dx)[...] = dX.transpose(1, 0, 2)
        self.dinitial_state = [d.copy() for d in dinit]
        return dx

    def _input_matrix(self):
        """(D+1, G H): the kernel with the bias as its last row. Subclasses reorder or scale the
        gate columns here into the layout their loop works in."""
        D = self.kernel.shape[0]
        Wb = self._buf("Wb", (D + 1, self.kernel.shape[1]))
        Wb[:D] = self.kernel
        Wb[D] = self.bias
        return Wb

    def _project_inputs(self, X):
        """Z (T, B, G H) = x_t W + b for all steps as one GEMM, X (T, B, D+1) @ [W; b]: X's
        column of ones adds the bias inside the GEMM (no pass over Z of its own)."""
        for _ in self._projected_chunks(X, whole=True):
            pass
        return self._buf("Z", (X.shape[0], X.shape[1], self.GATES * self.units))

    def _projected_chunks(self, X, whole=False):
        """Z as ``_project_inputs``, but a chunk of steps at a time: yields (start, stop) after
        projecting steps [start, stop), so the loop reads each chunk while it is still in cache
        (1.2x faster at long-small). Chunks hold about PROJECTION_CHUNK values and are used only
        when a chunk has at least PROJECTION_MIN_ROWS rows (a GEMM with fewer rows repacks
        [W; b] too often to pay); otherwise, or with ``whole``, one chunk of all steps."""
        T, B, D1 = X.shape
        Z = self._buf("Z", (T, B, self.GATES * self.units))
        Wb = self._input_matrix()
        steps = max(1, self.PROJECTION_CHUNK // (B * self.GATES * self.units))
        if whole or steps * B < self.PROJECTION_MIN_ROWS:
            steps = T
        X2, Z2 = X.reshape(T * B, D1), Z.reshape(T * B, -1)
        for start in range(0, T, steps):
            stop = min(T, start + steps)
            backend.xp.matmul(X2[start * B:stop * B], Wb, out=Z2[start * B:stop * B])
            yield start, stop

    def _real_steps(self, T, B, mk):
        """(T, B): 1 at a real step, 0 at a masked one (what the fused backward kernels take)."""
        real = self._buf("real", (T, B))
        real[...] = 1.0 if mk is None else mk.m[..., 0]
        return real

    def _input_side_grads(self, X, dZ, bias_grad=None):
        """After the loop, all steps at once: [dW; db] = X^T dZ (one GEMM: X's ones column gives
        db) and dX = dZ W^T. Stores dW in ``grads[0]`` and db in ``bias_grad`` (default
        ``grads[2]``; GRU's reset_after bias has two rows); returns dX (T, B, D)."""
        xp = backend.xp
        T, B, D1 = X.shape
        dWb = self._buf("dWb", (D1, dZ.shape[1]))
        xp.matmul(X.reshape(T * B, D1).T, dZ, out=dWb)
        self._grads[0][...] = dWb[:-1]
        (self._grads[2] if bias_grad is None else bias_grad)[...] = dWb[-1]
        dX = self._buf("dX", (T, B, D1 - 1))
        xp.matmul(dZ, self.kernel.T, out=dX.reshape(T * B, D1 - 1))
        return dX


class SimpleRNN(_Recurrent):
    """Fully connected recurrent layer:  h_t = f(x_t W + h_{t-1} U + b),  f = tanh by default.

    Weights: kernel W (D, H), recurrent_kernel U (H, H), bias b (H,).
    Forward: A = X W + b for all steps (one GEMM); per step h_t = f(A_t + h_{t-1} U).
    Backward: F = f'(h) for all steps; per step (t = T-1 .. 0)
        dh_t = dy_t + dh_t(from t+1),  da_t = dh_t * F_t,  dh_{t-1} = da_t U^T;
    then dW = X^T dA, dU = H_prev^T dA, db = sum dA, dX = dA W^T.
    """

    def __init__(self, units: int, activation: str = "tanh", **kwargs):
        super().__init__(units, **kwargs)
        if activation not in RNN_ACTIVATIONS:
            raise ValueError(f"SimpleRNN: activation must be one of {RNN_ACTIVATIONS}, got {activation!r}")
        self.activation = activation

    def _activate(self, a, out):
        """out = f(a); may overwrite a."""
        xp = backend.xp
        if self.activation == "tanh":
            xp.tanh(a, out=out)
        elif self.activation == "relu":
            xp.maximum(a, 0, out=out)
        elif self.activation == "sigmoid":
            a *= 0.5
            xp.tanh(a, out=out)
            out *= 0.5
            out += 0.5
        else:
            out[...] = a

    def _forward_loop(self, X, init, mk):
        xp = backend.xp
        T, B, _ = X.shape
        H = self.units
        A = self._project_inputs(X)
        Hs = self._buf("Hs", (T + 1, B, H))
        self._set_initial(Hs[0], init, 0)
        add_recurrent = self._step_product("U", self.recurrent_kernel, B, accumulate=True)
        for t in range(T):
            a = A[t]
            add_recurrent(Hs[t], a)              # a += h_{t-1} U
            self._activate(a, Hs[t + 1])
            if mk is not None and mk.partial[t]:
                xp.copyto(Hs[t + 1], Hs[t], where=mk.keep[t])
        self._fw = (X, Hs)
        return Hs, [Hs[T]]

    def _backward_loop(self, dH, dlast, mk):
        xp = backend.xp
        X, Hs = self._fw
        T, B, _ = X.shape
        H = self.units
        # f'(a) for every step at once, from the outputs
        F, Y = self._buf("F", (T, B, H)), Hs[1:]
        if self.activation == "tanh":
            xp.multiply(Y, Y, out=F)
            xp.subtract(1.0, F, out=F)
        elif self.activation == "relu":
            xp.greater(Y, 0, out=F)
        elif self.activation == "sigmoid":
            xp.subtract(1.0, Y, out=F)
            F *= Y
        else:
            F[...] = 1.0
        if mk is not None:
            F *= mk.m  # a masked step contributes nothing; its state passes through (below)
        backprop = self._step_product("UT", self.recurrent_kernel.T, B)   # dh_{t-1} = da_t U^T
        dh_next, tmp = self._buf("dh_next", (B, H)), self._buf("tmp", (B, H))
        dh_next[...] = dlast[0]
        for t in range(T - 1, -1, -1):
            dh = dH[t]
            dh += dh_next
            da = F[t]
            da *= dh                             # F becomes dA in place
            backprop(da, dh_next)
            if mk is not None and mk.partial[t]:
                xp.multiply(dh, mk.keepf[t], out=tmp)
                dh_next += tmp
        dA = F.reshape(T * B, H)
        xp.matmul(Hs[:-1].reshape(T * B, H).T, dA, out=self._grads[1])
        return self._input_side_grads(X, dA), [dh_next]

    def get_config(self):
        return {**super().get_config(), "activation": self.activation}


class LSTM(_Recurrent):
    """Long short-term memory layer, Keras gate order i, f, c, o.

    Weights: kernel W (D, 4H), recurrent_kernel U (H, 4H), bias b (4H,); with
    ``unit_forget_bias=True`` (Keras default) the forget-gate bias starts at 1.
    Per step, z = x_t W + h_{t-1} U + b split into z_i, z_f, z_c, z_o:
        i = s(z_i), f = s(z_f), g = tanh(z_c), o = s(z_o)
        c_t = f * c_{t-1} + i * g,   h_t = o * tanh(c_t)
    Backward: factors, computed a block of steps at a time,
        F = [g i(1-i), c_{t-1} f(1-f), i (1-g^2), tanh(c_t) o(1-o)],  K = o (1 - tanh(c_t)^2);
    per step (t = T-1 .. 0):
        dh_t = dy_t + dz_{t+1} U^T,   dc_t = f_{t+1} dc_{t+1} + dh_t K_t,
        dz_t = [dc_t, dc_t, dc_t, dh_t] * F_t;
    then [dW; db] = X^T dZ, dU = H_prev^T dZ, dX = dZ W^T.
    With numba installed, each step's elementwise math (forward, and backward with its factors)
    is one call of a fused kernel instead (``fused.py``: the same equations; ``FUSED`` forces
    either way).
    """

    GATES = 4
    N_STATES = 2

    def __init__(self, units: int, unit_forget_bias: bool = True, **kwargs):
        super().__init__(units, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)

    def _bias_init(self):
        if self.unit_forget_bias:
            return lstm_bias_initializer(self.bias_initializer, self.units)
        return self.bias_initializer

    def _gate_vectors(self):
        """Per-column (4H,) vectors: pre-activation scale, then y = alpha * tanh(.) + beta."""
        H = self.units
        scale, alpha, beta = (self._buf(n, (4 * H,)) for n in ("scale", "alpha", "beta"))
        scale[...] = 0.5
        alpha[...] = 0.5
        beta[...] = 0.5
        scale[2 * H:3 * H] = 1.0  # the candidate g = tanh(z_c) is a plain tanh
        alpha[2 * H:3 * H] = 1.0
        beta[2 * H:3 * H] = 0.0
        return scale, alpha, beta

    def _input_matrix(self):
        """[W; b] with the sigmoid columns halved (see ``_forward_loop``)."""
        Wb = super()._input_matrix()
        Wb *= self._gate_vectors()[0]
        return Wb

    def _has_kernels(self) -> bool:
        return True

    def _forward_loop(self, X, init, mk):
        xp = backend.xp
        T, B, _ = X.shape
        H = self.units
        scale, alpha, beta = self._gate_vectors()
        # s(z) = 0.5 tanh(z / 2) + 0.5: with the sigmoid columns of W, b and U halved (exact, a
        # power of two), one tanh covers all four gates
        Z = self._buf("Z", (T, B, 4 * H))            # x_t W + b, becomes the gate values [i, f, g, o]
        Us = self._buf("Us", (H, 4 * H))
        xp.multiply(self.recurrent_kernel, scale, out=Us)
        Hs, Cs, TC = self._buf("Hs", (T + 1, B, H)), self._buf("Cs", (T + 1, B, H)), self._buf("TC", (T, B, H))
        self._set_initial(Hs[0], init, 0)
        self._set_initial(Cs[0], init, 1)
        self._fw = (X, Z, Hs, Cs, TC)
        # iterating over arrays hands out each step's views at half the cost of indexing them
        states = zip(Hs[:-1], Hs[1:], Cs[:-1], Cs[1:], TC)
        if self._fused(Z.dtype):
            recurrent, r = self._step_product("Us", Us, B), self._buf("r", (B, 4 * H))
            for start, stop in self._projected_chunks(X):
                for t, z, (h_prev, h, c_prev, c, tc) in zip(range(start, stop), Z[start:stop], states):
                    recurrent(h_prev, r)                 # r = h_{t-1} U
                    fused.lstm_forward_step(z, r, c_prev, c, tc, h)
                    if mk is not None and mk.partial[t]:
                        xp.copyto(h, h_prev, where=mk.keep[t])
                        xp.copyto(c, c_prev, where=mk.keep[t])
            return Hs, [Hs[T], Cs[T]]
        self._project_inputs(X)
        add_recurrent = self._step_product("Us", Us, B, accumulate=True)
        tmp_h = self._buf("tmp_h", (B, H))
        Zi, Zf, Zg, Zo = Z.reshape(T, B, 4, H).transpose(2, 0, 1, 3)
        for t, (z, i, f, g, o, (h_prev, h, c_prev, c, tc)) in enumerate(zip(Z, Zi, Zf, Zg, Zo, states)):
            add_recurrent(h_prev, z)             # z += h_{t-1} U
            xp.tanh(z, out=z)
            z *= alpha
            z += beta
            xp.multiply(f, c_prev, out=c)
            xp.multiply(i, g, out=tmp_h)
            c += tmp_h
            xp.tanh(c, out=tc)
            xp.multiply(o, tc, out=h)
            if mk is not None and mk.partial[t]:
                xp.copyto(h, h_prev, where=mk.keep[t])
                xp.copyto(c, c_prev, where=mk.keep[t])
        return Hs, [Hs[T], Cs[T]]

    def _backward_factors(self, steps, mk):
        """Derivative factors F (steps, B, 4, H) and K (steps, B, H) of the steps in ``steps``."""
        xp = backend.xp
        X, Z, Hs, Cs, TC = self._fw
        T, B, _ = X.shape
        H = self.units
        gates = Z.reshape(T, B, 4, H)[steps]
        i, f, g, o = gates[:, :, 0], gates[:, :, 1], gates[:, :, 2], gates[:, :, 3]
        F = self._buf("F", (T, B, 4, H))[steps]
        Fi, Ff, Fg, Fo = F[:, :, 0], F[:, :, 1], F[:, :, 2], F[:, :, 3]
        xp.subtract(1.0, i, out=Fi)
        Fi *= i
        Fi *= g                                      # g i (1 - i)
        xp.subtract(1.0, f, out=Ff)
        Ff *= f
        Ff *= Cs[:-1][steps]                         # c_{t-1} f (1 - f)
        xp.multiply(g, g, out=Fg)
        xp.subtract(1.0, Fg, out=Fg)
        Fg *= i                                      # i (1 - g^2)
        xp.subtract(1.0, o, out=Fo)
        Fo *= o
        Fo *= TC[steps]                              # tanh(c_t) o (1 - o)
        K = self._buf("K", (T, B, H))[steps]
        xp.multiply(TC[steps], TC[steps], out=K)
        xp.subtract(1.0, K, out=K)
        K *= o                                       # o (1 - tanh(c_t)^2): dc_t += dh_t K_t
        f_pass = f
        if mk is not None:
            # masked steps: no gate gradient, and dh, dc pass to the previous step unchanged
            F *= mk.m[steps][..., None]
            K *= mk.m[steps]
            f_pass = self._buf("f_pass", (T, B, H))[steps]
            f_pass[...] = f
            xp.copyto(f_pass, 1.0, where=mk.keep[steps])
        return F, K, f_pass

    def _backward_loop(self, dH, dlast, mk):
        xp = backend.xp
        X, Z, Hs, Cs, TC = self._fw
        T, B, _ = X.shape
        H = self.units
        backprop = self._step_product("UT", self.recurrent_kernel.T, B)   # dh_{t-1} = dz_t U^T
        dh_next, dc, tmp = self._buf("dh_next", (B, H)), self._buf("dc", (B, H)), self._buf("tmp_h", (B, H))
        dh_next[...] = dlast[0]
        dc[...] = dlast[1]
        if self._fused(Z.dtype):
            dZ = self._buf("F", (T, B, 4, H)).reshape(T, B, 4 * H)
            steps = zip(Z, Cs[:-1], TC, dH, dZ, self._real_steps(T, B, mk))
            for t, (gates, c_prev, tc, dh, dz, m) in reversed(list(enumerate(steps))):
                fused.lstm_backward_step(gates, c_prev, tc, dh, dh_next, dc, m, dz)
                backprop(dz, dh_next)
                if mk is not None and mk.partial[t]:
                    xp.multiply(dh, mk.keepf[t], out=tmp)
                    dh_next += tmp
        else:
            for start, stop in self._step_blocks(T, B):
                F, K, f_pass = self._backward_factors(slice(start, stop), mk)
                steps = zip(dH[start:stop], F, F.reshape(stop - start, B, 4 * H), K, f_pass)
                for t, (dh, dz, dz_flat, k, f) in reversed(list(enumerate(steps, start))):
                    dh += dh_next
                    xp.multiply(dh, k, out=tmp)
                    dc += tmp
                    xp.multiply(dz[:, :3], dc[:, None, :], out=dz[:, :3])   # F (B, 4, H) becomes dz
                    xp.multiply(dz[:, 3], dh, out=dz[:, 3])
                    dc *= f
                    backprop(dz_flat, dh_next)
                    if mk is not None and mk.partial[t]:
                        xp.multiply(dh, mk.keepf[t], out=tmp)
                        dh_next += tmp
        dZ = self._buf("F", (T, B, 4, H)).reshape(T * B, 4 * H)
        xp.matmul(Hs[:-1].reshape(T * B, H).T, dZ, out=self._grads[1])
        return self._input_side_grads(X, dZ), [dh_next, dc]

    def get_config(self):
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}


class GRU(_Recurrent):
    """Gated recurrent unit layer, Keras gate order z, r, h.

    Weights: kernel W (D, 3H), recurrent_kernel U (H, 3H), bias (2, 3H) with
    ``reset_after=True`` (row 0 input bias, row 1 recurrent bias; the PyTorch/cuDNN form) or
    (3H,) with ``reset_after=False``. Per step (reset_after=True):
        xz = x_t W + b[0],  hz = h_{t-1} U + b[1]
        z = s(xz_z + hz_z),  r = s(xz_r + hz_r),  hh = tanh(xz_h + r * hz_h)
        h_t = z * h_{t-1} + (1 - z) * hh  =  hh + z * (h_{t-1} - hh)
    reset_after=False:  hh = tanh(x_t W_h + (r * h_{t-1}) U_h + b_h).
    Backward (reset_after=True): factors for all steps at once,
        Fh = (1-z)(1-hh^2),  F = [(h_{t-1} - hh) z(1-z),  Fh hz_h r(1-r),  Fh r];
    per step:  dh_t = dy_t + dh_t(from t+1),  dHZ_t = dh_t F_t,  dh_{t-1} = dh_t z + dHZ_t U^T;
    then dU = H_prev^T dHZ, db[1] = sum dHZ, dXZ = dHZ with its h block replaced by dh Fh,
    dW = X^T dXZ, db[0] = sum dXZ, dX = dXZ W^T.
    """

    GATES = 3

    def __init__(self, units: int, reset_after: bool = True, **kwargs):
        super().__init__(units, **kwargs)
        self.reset_after = bool(reset_after)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def _has_kernels(self) -> bool:
        return self.reset_after

    def _input_matrix(self):
        """[W; b_input] with the z, r columns halved (tanh form of the sigmoid). reset_after:
        the input bias is b[0] plus the recurrent z, r biases (they add like input biases)."""
        D, H = self.kernel.shape[0], self.units
        Wb = self._buf("Wb", (D + 1, 3 * H))
        Wb[:D] = self.kernel
        if self.reset_after:
            Wb[D] = self.bias[0]
            Wb[D, :2 * H] += self.bias[1][:2 * H]
        else:
            Wb[D] = self.bias
        Wb[:, :2 * H] *= 0.5
        return Wb

    def _forward_loop(self, X, init, mk):
        xp = backend.xp
        T, B, _ = X.shape
        H = self.units
        U, b = self.recurrent_kernel, self.bias
        fused_steps = self._fused(X.dtype)           # then the projection goes a chunk at a time
        # x_t W + b, becomes the gate values [z, r, hh]
        Z = self._buf("Z", (T, B, 3 * H)) if fused_steps else self._project_inputs(X)
        Hs = self._buf("Hs", (T + 1, B, H))
        self._set_initial(Hs[0], init, 0)
        tmp_h = self._buf("tmp_h", (B, H))
        if self.reset_after:
            Us = self._buf("Us", (H, 3 * H))
            Us[...] = U
            Us[:, :2 * H] *= 0.5
            b_hh = b[1][2 * H:]
            HZ = self._buf("HZ", (T, B, 3 * H))      # h_{t-1} U (+ b_hh in the h block)
            recurrent = self._step_product("Us", Us, B)
            self._fw = (X, Z, Hs, HZ)
            if fused_steps:
                states = zip(Hs[:-1], Hs[1:])
                for start, stop in self._projected_chunks(X):
                    for t, x, hz, (h_prev, h) in zip(range(start, stop), Z[start:stop], HZ[start:stop], states):
                        recurrent(h_prev, hz)
                        fused.gru_forward_step(x, hz, b_hh, h_prev, h)
                        if mk is not None and mk.partial[t]:
                            xp.copyto(h, h_prev, where=mk.keep[t])
                return Hs, [Hs[T]]
            # each step's views by iteration (half the cost of indexing them, see LSTM)
            steps = zip(Z[:, :, :2 * H], Z[:, :, :H], Z[:, :, H:2 * H], Z[:, :, 2 * H:], HZ,
                        HZ[:, :, :2 * H], HZ[:, :, 2 * H:], Hs[:-1], Hs[1:])
            for t, (zr, z, r, hh, hz, hz_zr, hz_h, h_prev, h) in enumerate(steps):
                recurrent(h_prev, hz)
                hz_h += b_hh
                zr += hz_zr
                xp.tanh(zr, out=zr)
                zr *= 0.5
                zr += 0.5
                xp.multiply(r, hz_h, out=tmp_h)
                hh += tmp_h
                xp.tanh(hh, out=hh)
                xp.subtract(h_prev, hh, out=tmp_h)
                tmp_h *= z
                xp.add(hh, tmp_h, out=h)
                if mk is not None and mk.partial[t]:
                    xp.copyto(h, h_prev, where=mk.keep[t])
        else:
            U_zr = self._buf("U_zr", (H, 2 * H))
            xp.multiply(U[:, :2 * H], 0.5, out=U_zr)
            U_h = self._buf("U_h", (H, H))
            U_h[...] = U[:, 2 * H:]
            RH = self._buf("RH", (T, B, H))          # r * h_{t-1}, kept for dU_h
            tmp_zr = self._buf("tmp_zr", (B, 2 * H))
            for t in range(T):
                z = Z[t]
                xp.matmul(Hs[t], U_zr, out=tmp_zr)
                zr = z[:, :2 * H]
                zr += tmp_zr
                xp.tanh(zr, out=zr)
                zr *= 0.5
                zr += 0.5
                xp.multiply(z[:, H:2 * H], Hs[t], out=RH[t])
                xp.matmul(RH[t], U_h, out=tmp_h)
                hh = z[:, 2 * H:]
                hh += tmp_h
                xp.tanh(hh, out=hh)
                xp.subtract(Hs[t], hh, out=tmp_h)
                tmp_h *= z[:, :H]
                xp.add(hh, tmp_h, out=Hs[t + 1])
                if mk is not None and mk.partial[t]:
                    xp.copyto(Hs[t + 1], Hs[t], where=mk.keep[t])
            self._fw = (X, Z, Hs, RH)
        return Hs, [Hs[T]]

    def _update_factors(self, Z, steps=slice(None)):
        """The gate values z, r, hh (views of Z) and, for the steps in ``steps``,
        Fh = (1 - z)(1 - hh^2) (dh_t Fh is the gradient of the candidate's pre-activation) and 1 - z."""
        xp = backend.xp
        T, B = Z.shape[0], Z.shape[1]
        gates = Z.reshape(T, B, 3, self.units)[steps]
        z, r, hh = gates[:, :, 0], gates[:, :, 1], gates[:, :, 2]
        Fh = self._buf("Fh", (T, B, self.units))[steps]
        one_minus_z = self._buf("one_minus_z", (T, B, self.units))[steps]
        xp.multiply(hh, hh, out=Fh)
        xp.subtract(1.0, Fh, out=Fh)
        xp.subtract(1.0, z, out=one_minus_z)
        Fh *= one_minus_z
        return z, r, hh, Fh, one_minus_z

    def _backward_factors(self, steps, mk):
        """reset_after: F (steps, B, 3, H) = [Fz, Fr, Fhr] of the steps in ``steps`` (F becomes
        dHZ in place in the loop), the masked Fh (kept whole for the input side) and z_pass."""
        xp = backend.xp
        X, Z, Hs, HZ = self._fw
        T, B, _ = X.shape
        H = self.units
        z, r, hh, Fh, one_minus_z = self._update_factors(Z, steps)
        F = self._buf("F", (T, B, 3, H))[steps]
        Fz, Fr, Fhr = F[:, :, 0], F[:, :, 1], F[:, :, 2]
        xp.subtract(Hs[:-1][steps], hh, out=Fz)
        Fz *= z
        Fz *= one_minus_z                            # (h_{t-1} - hh) z (1 - z)
        xp.subtract(1.0, r, out=Fr)
        Fr *= r
        Fr *= HZ[steps][:, :, 2 * H:]
        Fr *= Fh                                     # Fh hz_h r (1 - r)
        xp.multiply(Fh, r, out=Fhr)                  # Fh r
        z_pass = z
        if mk is not None:
            F *= mk.m[steps][..., None]
            Fh *= mk.m[steps]
            z_pass = self._buf("z_pass", (T, B, H))[steps]
            z_pass[...] = z
            xp.copyto(z_pass, 1.0, where=mk.keep[steps])  # masked: dh passes through unchanged
        return F, z_pass

    def _backward_loop(self, dH, dlast, mk):
        if not self.reset_after:
            return self._backward_loop_reset_before(dH, dlast, mk)
        xp = backend.xp
        X, Z, Hs, HZ = self._fw
        T, B, _ = X.shape
        H = self.units
        dh_next, tmp = self._buf("dh_next", (B, H)), self._buf("tmp_h", (B, H))
        dh_next[...] = dlast[0]
        F = self._buf("F", (T, B, 3, H))             # the factors, then dHZ, in place
        fused_steps = self._fused(Z.dtype)
        if fused_steps:
            backprop = self._step_product("UT", self.recurrent_kernel.T, B, accumulate=True)
            dXh = self._buf("Fh", (T, B, H))          # the gradient of x_t W_h + b[0]_h
            steps = zip(Z, HZ, Hs[:-1], dH, self._real_steps(T, B, mk), F.reshape(T, B, 3 * H), dXh)
            for gates, hz, h_prev, dh, m, dhz, dxh in reversed(list(steps)):
                fused.gru_backward_step(gates, hz, h_prev, dh, dh_next, m, dhz, dxh)
                backprop(dhz, dh_next)               # dh_next += dhz_t U^T
        else:
            backprop = self._step_product("UT", self.recurrent_kernel.T, B)   # dhz_t U^T, part of dh_{t-1}
            for start, stop in self._step_blocks(T, B):
                F_block, z_pass = self._backward_factors(slice(start, stop), mk)
                steps = zip(dH[start:stop], F_block, F_block.reshape(stop - start, B, 3 * H), z_pass)
                for dh, dhz, dhz_flat, z in reversed(list(steps)):
                    dh += dh_next                    # dH keeps dh_t for the input side below
                    dhz *= dh[:, None, :]            # F becomes dHZ in place
                    backprop(dhz_flat, dh_next)
                    xp.multiply(dh, z, out=tmp)
                    dh_next += tmp
        dZ = F.reshape(T * B, 3 * H)
        xp.matmul(Hs[:-1].reshape(T * B, H).T, dZ, out=self._grads[1])
        xp.matmul(ones_vector(T * B, dZ.dtype), dZ, out=self._grads[2][1])
        # dHZ -> dXZ: the h block is dh Fh, not dh Fh r
        if fused_steps:
            F[:, :, 2] = self._buf("Fh", (T, B, H))  # the kernel wrote dh Fh there
        else:
            xp.multiply(dH, self._buf("Fh", (T, B, H)), out=F[:, :, 2])
        return self._input_side_grads(X, dZ, bias_grad=self._grads[2][0]), [dh_next]

    def _backward_loop_reset_before(self, dH, dlast, mk):
        xp = backend.xp
        X, Z, Hs, RH = self._fw
        T, B, _ = X.shape
        H = self.units
        z, r, hh, Fh, one_minus_z = self._update_factors(Z)
        Fz = self._buf("Fz", (T, B, H))
        xp.subtract(Hs[:-1], hh, out=Fz)
        Fz *= z
        Fz *= one_minus_z                            # (h_{t-1} - hh) z (1 - z)
        Fr = self._buf("Fr", (T, B, H))
        xp.subtract(1.0, r, out=Fr)
        Fr *= r
        Fr *= Hs[:-1]                                # h_{t-1} r (1 - r): da_r = d(r h) Fr
        z_pass = z
        if mk is not None:
            Fh *= mk.m
            Fz *= mk.m
            z_pass = self._buf("z_pass", (T, B, H))
            z_pass[...] = z
            xp.copyto(z_pass, 1.0, where=mk.keep)
        U = self.recurrent_kernel
        U_zrT, U_hT = self._buf("U_zrT", (2 * H, H)), self._buf("U_hT", (H, H))
        transpose_into(U_zrT, U[:, :2 * H])
        transpose_into(U_hT, U[:, 2 * H:])
        dZ3 = self._buf("dZ", (T, B, 3 * H))
        dh_next, tmp, drh = self._buf("dh_next", (B, H)), self._buf("tmp_h", (B, H)), self._buf("drh", (B, H))
        dh_next[...] = dlast[0]
        for t in range(T - 1, -1, -1):
            dh = dH[t]
            dh += dh_next
            dz = dZ3[t]
            xp.multiply(dh, Fh[t], out=dz[:, 2 * H:])
            xp.matmul(dz[:, 2 * H:], U_hT, out=drh)          # d(r h_{t-1})
            xp.multiply(dh, Fz[t], out=dz[:, :H])
            xp.multiply(drh, Fr[t], out=dz[:, H:2 * H])
            xp.matmul(dz[:, :2 * H], U_zrT, out=dh_next)
            xp.multiply(dh, z_pass[t], out=tmp)
            dh_next += tmp
            xp.multiply(drh, r[t], out=tmp)
            dh_next += tmp
        dZ = dZ3.reshape(T * B, 3 * H)
        self._grads[1][:, :2 * H] = Hs[:-1].reshape(T * B, H).T @ dZ[:, :2 * H]
        self._grads[1][:, 2 * H:] = RH.reshape(T * B, H).T @ dZ[:, 2 * H:]
        return self._input_side_grads(X, dZ), [dh_next]

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after}


class Bidirectional(Layer):
    """Runs ``layer`` forwards and a copy of it backwards over the sequence, and merges the two.

    The backward copy is built from ``layer.get_config()`` with ``go_backwards`` flipped (its
    own weights); its output sequence is reversed back so that step t of both lines up with
    x_t. With a mask or lengths (right padding), the backward pass starts at each sequence's
    last real step, as PyTorch's packed bidirectional layers.

    ``merge_mode``: "concat" (B, [T,] 2H), "sum", "ave", "mul" (B, [T,] H), or None (a tuple
    (y_forward, y_backward); then ``backward`` takes a pair of gradients).
    ``params`` = the forward layer's, then the backward layer's. With ``return_state`` the
    layer returns ``(y, *forward_states, *backward_states)``; ``initial_state`` and
    ``backward(dy, dstates)`` take the states in that order, and ``dinitial_state`` lists them so.
    """

    MERGE_MODES = ("concat", "sum", "ave", "mul", None)

    def __init__(self, layer, merge_mode="concat", **kwargs):
        super().__init__(**kwargs)
        if not isinstance(layer, _Recurrent):
            raise TypeError(f"Bidirectional wraps a SimpleRNN, LSTM or GRU layer, got {type(layer).__name__}")
        if merge_mode not in self.MERGE_MODES:
            raise ValueError(f"{self.describe()}: merge_mode must be one of {self.MERGE_MODES}, got {merge_mode!r}")
        self.merge_mode = merge_mode
        config = layer.get_config()
        config.update(name=f"backward_{layer.name}", go_backwards=not layer.go_backwards)
        if layer.seed is not None:
            config["seed"] = layer.seed + 1  # the two directions must not start equal
        self.forward_layer = layer
        self.backward_layer = type(layer).from_config(config)
        self.sublayers = [self.forward_layer, self.backward_layer]
        self.units = layer.units
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.dinitial_state = None
        if layer.built:
            self.build(layer.input_shape)

    def build(self, input_shape):
        super().build(input_shape)
        for sub in self.sublayers:
            if not sub.built:
                sub.build(input_shape)

    def reset_states(self) -> None:
        for sub in self.sublayers:
            sub.reset_states()

    def _aligned(self, layer, seq):
        """A go_backwards layer's sequence in input order (a view; reversal is its own inverse)."""
        return seq[:, ::-1] if layer.go_backwards and self.return_sequences else seq

    def forward(self, x, mask=None, initial_state=None, lengths=None):
        xp = backend.xp
        if getattr(x, "ndim", None) != 3:
            raise ShapeError(f"{self.describe()}: expected a 3-D input (batch, time, features), "
                             f"got shape {tuple(getattr(x, 'shape', ()))}")
        self.maybe_build(x)
        n = self.forward_layer.N_STATES
        init_f = init_b = None
        if initial_state is not None:
            if len(initial_state) != 2 * n:
                raise ShapeError(f"{self.describe()}: initial_state must list {n} forward then {n} backward "
                                 f"state array(s), got {len(initial_state)}")
            init_f, init_b = list(initial_state[:n]), list(initial_state[n:])
        outs = []
        for layer, init in ((self.forward_layer, init_f), (self.backward_layer, init_b)):
            out = layer.forward(x, mask=mask, initial_state=init, lengths=lengths)
            outs.append(out if isinstance(out, tuple) else (out,))
        y_f, y_b = self._aligned(self.forward_layer, outs[0][0]), self._aligned(self.backward_layer, outs[1][0])
        self._y = (y_f, y_b)
        if self.merge_mode == "concat":
            y = (xp.concatenate([y_f, y_b], axis=-1),)
        elif self.merge_mode == "sum":
            y = (y_f + y_b,)
        elif self.merge_mode == "ave":
            y = (0.5 * (y_f + y_b),)
        elif self.merge_mode == "mul":
            y = (y_f * y_b,)
        else:
            y = (xp.ascontiguousarray(y_f), xp.ascontiguousarray(y_b))
        states = (*outs[0][1:], *outs[1][1:])
        result = y + states
        return result if len(result) > 1 else result[0]

    def backward(self, dy, dstates=None):
        H = self.units
        y_f, y_b = self._y
        if self.merge_mode == "concat":
            dy_f, dy_b = dy[..., :H], dy[..., H:]
        elif self.merge_mode == "sum":
            dy_f = dy_b = dy
        elif self.merge_mode == "ave":
            dy_f = dy_b = 0.5 * dy
        elif self.merge_mode == "mul":
            dy_f, dy_b = dy * y_b, dy * y_f
        else:
            dy_f, dy_b = dy
        n = self.forward_layer.N_STATES
        dstates = list(dstates) if dstates is not None else []
        dstates += [None] * (2 * n - len(dstates))
        dx = self.forward_layer.backward(self._aligned(self.forward_layer, dy_f), dstates[:n])
        dx += self.backward_layer.backward(self._aligned(self.backward_layer, dy_b), dstates[n:])
        self.dinitial_state = self.forward_layer.dinitial_state + self.backward_layer.dinitial_state
        return dx

    def compute_output_shape(self, input_shape):
        shape = self.forward_layer.compute_output_shape(input_shape)
        y = shape[0] if self.return_state else shape
        H = self.units
        if self.merge_mode == "concat":
            ys = [(*y[:-1], 2 * H)]
        elif self.merge_mode is None:
            ys = [y, y]
        else:
            ys = [y]
        if self.return_state:
            return ys + [(H,)] * (2 * self.forward_layer.N_STATES)
        return ys if len(ys) > 1 else ys[0]

    def get_config(self):
        return {**super().get_config(), "layer": layer_to_dict(self.forward_layer), "merge_mode": self.merge_mode}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["layer"] = layer_from_dict(config["layer"])
        return cls(**config)
