"""What the fast loops of the recurrent layers are built from: ``FastLoop``.

A recurrent layer (``recurrent.py``) holds its weights and its cell's equations (``steps.py``)
and runs a loop over time: the reference loop (``bptt.ReferenceLoop``: the cell's step looped
plainly) or, when this package is enabled, a fast loop of ``loops.py``, an object it is
handed (``rnnlab.layers.fast.loop_for``). A fast loop computes the same numbers from the same
weights; the tests prove it equal to the reference in float64. This module holds what those
loops are built from: buffers kept between calls, the per-step product in the orientation of
the rule (``orientation.py``), blocks of steps, the input projection in chunks, and whether
the fused numba kernels of ``fused.py`` and the compiled loops of ``compiled.py`` run.

**How the time loop is written for speed.** Internally everything is time-major and contiguous:
X (T, B, D+1), gates (T, B, G*H), states (T+1, B, H), all in buffers kept from one call to the
next (reallocated only when the shape changes). X carries a column of ones, so the input
projections of all steps, bias included, are one GEMM, (T*B, D+1) @ [W; b]; inside the loop
only h_{t-1} @ U remains (h U or (U^T h^T)^T, whichever the rule of ``orientation.py`` picks
for the shape: ``FastLoop._step_product``), written with ``out=`` into preallocated memory,
and the gate math runs in place on each step's views (handed out by iterating over the buffers,
which costs half of indexing them). Sigmoids use s(z) = 0.5 tanh(z / 2) + 0.5: the factor 1/2
is folded into [W; b] and U (an exact scaling by a power of two), so one ``tanh`` call covers
all four LSTM gates and two in-place ``*= alpha; += beta`` with per-column vectors turn the
sigmoid columns into s(z) and leave the tanh column as is. In backward, the derivative factors
(e.g. g i (1 - i)) are computed with whole-array operations over a block of steps just before
the loop reaches it (blocks of about 2^17 values, which stay in cache; GRU with
reset_after=False: all steps at once), the loop does only what needs the recurrence (a few
products and dz_t @ U^T, again in the orientation of the rule), and [dW; db] = X^T dZ (the ones
column gives db), dU = H_prev^T dZ and dX = dZ W^T are each one GEMM over all steps after it.
Arrays keep the parameters' dtype (float32 by default) throughout.

**Fused kernels.** When numba is installed (``pip install "rnnlab[fast]"``), LSTM and GRU
(reset_after=True) replace each step's elementwise calls, and in backward the factor passes
too, by one call of a compiled kernel from ``fused.py`` that reads every value once (the same
equations, on the same buffers; the products stay BLAS calls). ``FUSED = None`` (default) uses
them when numba imports, ``True``/``False`` forces; ``RNNLAB_FUSED=0`` switches them off. The
tests run every recurrent check on both paths.

**Compiled loops.** Where the fused kernels run and SciPy imports as well, LSTM and GRU
(reset_after) run the whole time loop, forward and backward, as one call of ``compiled.py``
(the loop calls SciPy's BLAS itself; batch rows split over two threads, deterministically): the
same kernels on the same buffers, only the per-step return to Python is gone. They are opt-in:
``COMPILED = None`` (default) uses them only with ``RNNLAB_COMPILED=1`` (on one Intel Xeon they
were slower than the per-step kernels at the ptb-medium shape: benchmarks/README.md),
``True``/``False`` forces; ``RNNLAB_COMPILED=0`` switches them off. The tests run every recurrent check on the reference loop and on all three fast paths (NumPy, fused, compiled).

**Deterministic.** No choice that changes the numbers depends on a timing: the per-step
product's orientation follows a rule of the shapes (``orientation.py``), the blocks of steps and
chunks of the projection follow the shapes, and the compiled loops' row blocks follow B alone.
The same command with the same seed gives the same bits on an idle and on a busy machine.
"""
from __future__ import annotations

import os

import numpy as np

from ... import backend
from . import compiled, fused
from .orientation import transposed_products

_ONES: dict = {}


def ones_vector(n: int, dtype):
    """A cached vector of n ones: a bias gradient as one GEMV, 1^T dY, is faster than
    ``dY.sum(axis=0)`` (a strided reduction over rows). Never write into it."""
    xp = backend.xp
    key = (xp.__name__, int(n), np.dtype(dtype).str)
    a = _ONES.get(key)
    if a is None:
        if len(_ONES) > 64:   # shapes change rarely; keep the cache small anyway
            _ONES.clear()
        a = _ONES[key] = xp.ones(int(n), dtype=dtype)
    return a


def transpose_into(dst, src):
    """dst[...] = src.T; for the contiguous U^T the backward loops multiply by.

    When src's rows lie a multiple of 1 KB apart (H = 512: 8 KB), a plain strided copy maps
    the values it reads to the same few cache sets; copying 16 rows at a time avoids that
    (timings: benchmarks/README.md)."""
    if backend.xp is np and src.strides[0] % 1024 == 0:
        for r in range(0, src.shape[0], 16):
            dst[:, r:r + 16] = src[r:r + 16].T
    else:
        dst[...] = src.T
    return dst


class FastLoop:
    """A recurrent layer's fast loop over time (a subclass of ``loops.py`` per kind), handed to
    the layer as a strategy: ``forward(x, init, mask) -> (Hs, final_states)`` and
    ``backward(dH, dlast, mask) -> (dX, dinitial_states)``, the interface of
    ``bptt.ReferenceLoop``. It reads the layer's weights and options, writes the layer's
    gradients, and keeps its own buffers. The class constants tune or force the choices (the
    tests force each one both ways; ``FUSED`` and ``COMPILED`` also follow ``RNNLAB_FUSED`` and
    ``RNNLAB_COMPILED``)."""

    FACTOR_BLOCK = 1 << 17   # gate values per block of steps in backward (about 512 KB in float32)
    TRANSPOSED_PRODUCTS = None  # per-step products: None = by the shape (orientation.py), or force True/False
    FUSED = None   # fused step kernels (fused.py) where a layer has them: None = when numba is installed
    COMPILED = None  # whole-loop compiled calls (compiled.py) where the fused kernels run: None = RNNLAB_COMPILED=1
    PROJECTION_CHUNK = 1 << 18     # gate values per chunk of the input projection (1 MB in float32)
    PROJECTION_MIN_ROWS = 256      # smaller chunks are not worth it: one GEMM for all steps
    DIRECTIONS_AT_ONCE = None      # a bidirectional layer's two directions on two threads: see run_pair

    def __init__(self, layer):
        self.layer = layer
        self._buffers: dict = {}

    # the layer's weights and options, as the loops read them
    units = property(lambda self: self.layer.units)
    kernel = property(lambda self: self.layer.kernel)
    recurrent_kernel = property(lambda self: self.layer.recurrent_kernel)
    bias = property(lambda self: self.layer.bias)
    _grads = property(lambda self: self.layer._grads)
    GATES = property(lambda self: self.layer.GATES)

    def describe(self) -> str:
        return self.layer.describe()

    def forward(self, x, init, mk):
        """x (B, T, D) in processing order, init (list of (B, H) or None), mk (``bptt.Mask`` or
        None) -> Hs (T+1, B, H) time-major (Hs[0] the initial h), final states."""
        B, T, D = x.shape
        X = self._buf("X", (T, B, D + 1))     # x time-major, then a column of ones (see _project_inputs)
        X[:, :, :D] = x.transpose(1, 0, 2)
        X[:, :, D] = 1.0
        return self._forward_loop(X, init, mk)

    def backward(self, dH, dlast, mk):
        """dH (T, B, H) the gradient reaching each step's output (may be overwritten), dlast the
        gradients of the final states -> dX (T, B, D), dL/d(initial states); writes the grads."""
        return self._backward_loop(dH, dlast, mk)

    def run_pair(self, forward_call, backward_call):
        """(forward_call(), backward_call()) of a bidirectional layer's two directions: at once
        on two threads where the compiled loops run (they release the GIL; the two share
        nothing but the input, so the bits are those of one after the other), else in turn
        (``DIRECTIONS_AT_ONCE``: None = so, True/False forces; True needs the compiled loops)."""
        if self._directions_at_once():
            return compiled.run_pair(forward_call, backward_call)
        return forward_call(), backward_call()

    def _directions_at_once(self) -> bool:
        runs_compiled = self._compiled(self.kernel.dtype)
        if self.DIRECTIONS_AT_ONCE is None:
            return runs_compiled
        if self.DIRECTIONS_AT_ONCE and not runs_compiled:
            raise RuntimeError(f"{self.describe()}: DIRECTIONS_AT_ONCE = True needs the compiled loops "
                               f"(LSTM or GRU with reset_after, numba and scipy)")
        return bool(self.DIRECTIONS_AT_ONCE)

    @staticmethod
    def _set_initial(dst, init, k):
        if init is None:
            dst[...] = 0
        else:
            dst[...] = init[k]

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

    # ---- the per-step product, in the orientation of the rule -------------------------------------------
    def _step_product(self, name, M, B, accumulate=False):
        """A function ``product(a, out)`` for the recurrent product of every step, a (B, K) @ M (K, N):
        ``out += a @ M`` with ``accumulate``, else ``out[...] = a @ M``.

        It computes either a @ M or the transposed product (M^T a^T)^T. The BLAS packs its
        operands on every call, and with few rows (B <= 64) some CPUs run the second form much
        faster while others do not (timings: benchmarks/README.md); the two round differently, so
        the form follows a rule of the shapes, never a timing (``orientation.transposed_products``;
        ``TRANSPOSED_PRODUCTS`` = True or False forces one). The
        price of the transposed form is a transposed add or copy of the (B, N) result.
        """
        xp = backend.xp
        K, N = M.shape
        if not self._transposed(B, K, N):
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

    def _compiled(self, dtype) -> bool:
        """Whether the loops run as one call of ``compiled.py`` (see ``COMPILED``): only where the
        fused kernels run (the compiled loop is built from them)."""
        if not self._fused(dtype):
            return False
        if self.COMPILED is None:  # opt-in until measured faster per shape (benchmarks/README.md)
            return os.environ.get("RNNLAB_COMPILED") == "1" and compiled.available()
        if self.COMPILED and not compiled.available():
            raise RuntimeError(f"{self.describe()}: COMPILED = True, but {compiled.missing()}")
        return bool(self.COMPILED)

    def _transposed(self, B, K, N) -> bool:
        """Whether the per-step product (B, K) @ (K, N) runs transposed (see ``_step_product``)."""
        if self.TRANSPOSED_PRODUCTS is not None:
            return bool(self.TRANSPOSED_PRODUCTS)
        return backend.backend_name() == "numpy" and transposed_products(B, K, N)

    def _step_blocks(self, T, B):
        """(start, stop) of blocks of steps, last block first, each holding about FACTOR_BLOCK gate
        values (at least one step): backward computes a block's derivative factors just before
        its loop reaches them, while they are still in cache (rather than all steps at once,
        which leaves cache before the loop reads them)."""
        block = max(1, self.FACTOR_BLOCK // (B * self.GATES * self.units))
        for stop in range(T, 0, -block):
            yield max(0, stop - block), stop

    # ---- states -----------------------------------------------------------------------------------
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
        projecting steps [start, stop), so the loop reads each chunk while it is still in cache.
        Chunks hold about PROJECTION_CHUNK values and are used only
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

    def _pass_through(self, name, gate, mk, steps=slice(None)):
        """A copy of ``gate`` (steps, B, H) with 1.0 at masked steps: the factor by which the
        state's gradient passes to the previous step (a masked step keeps its state)."""
        T, B, H = mk.m.shape[0], gate.shape[1], gate.shape[2]
        passed = self._buf(name, (T, B, H))[steps]
        passed[...] = gate
        backend.xp.copyto(passed, 1.0, where=mk.keep[steps])
        return passed

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
