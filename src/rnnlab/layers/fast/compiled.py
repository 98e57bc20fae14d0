"""Compiled LSTM and GRU time loops: the whole forward and the whole backward of one layer in one call.

Why: the layers' loops (``recurrent.LSTM``, ``recurrent.GRU``) return to Python at every step,
to call BLAS for h_{t-1} U and a kernel of ``fused.py`` for the elementwise math. Here one numba
function runs all T steps and calls BLAS itself, through the function addresses SciPy publishes
for exactly this use (``scipy.linalg.cython_blas``: a stable, public interface, not the BLAS
symbols of a particular NumPy build). The elementwise math is ``fused.py``'s kernels, called
from the compiled loop, so both paths compute the same equations on the same buffers. The
NumPy loops stay the fallback and the readable form; the tests prove this loop equal to them
(float64, 1e-12).

Both cores, without BLAS threads: a step's product is too small for the BLAS's own threads to
pay, so the loop runs the BLAS single-threaded (threadpoolctl, while a loop runs) and uses the
structure of the problem instead. The sequences of a batch are independent: the rows are cut
into fixed blocks (``row_blocks``: chosen by the batch size alone, never by the number of
threads), each block runs all T steps on its own with no synchronisation, and the compiled loop
releases the GIL, so two Python threads run two blocks at once. A block computes the same
numbers whichever thread runs it, so results are identical, bit for bit, with 1 or 2 threads.
The per-step product reads the weight either as stored or as a transposed copy, by a rule of
the shapes (``orientation.compiled_weight_transposed``: never a timing, since the two round
differently; ``TRANSPOSED_WEIGHTS`` forces one). The single-thread limit holds for every BLAS in
the process while a loop runs (restored after), so NumPy products on other Python threads run
single-threaded meanwhile. The two directions of a bidirectional layer are independent like
the blocks: ``run_pair`` runs them as two calls on two threads.

LSTM layout, time-major and C-contiguous, as the layer keeps its buffers (B batch, T steps, H units):

    Z (T, B, 4H)   x_t W + b with the sigmoid columns (i, f, o) halved; becomes the gates [i, f, g, o]
    Us (H, 4H)     U with the same columns halved (s(z) = 0.5 tanh(z / 2) + 0.5, see fused.py)
    Hs, Cs (T+1, B, H)   Hs[0], Cs[0] the initial states, Hs[t+1], Cs[t+1] the states after step t
    TC (T, B, H)   tanh(c_t)
    real (T, B)    1 at a real step, 0 at a masked one (a masked step keeps its states)

Forward, per step and block:  r = h_{t-1} Us (one GEMM),  fused.lstm_forward_step(z_t, r, ...),
then masked rows keep h_{t-1}, c_{t-1}. Backward, per step (t = T-1 .. 0):
fused.lstm_backward_step (dz_t, dh_t, the carry of dc), then dh_{t-1} = dz_t U^T (one GEMM, U
unscaled: dz is the gradient of the unscaled pre-activation), and a masked row passes dh_t on
unchanged. GRU (reset_after) likewise with ``fused.gru_forward_step`` / ``gru_backward_step``
(buffers in ``gru_forward_into``). The products over all steps (dU = H_prev^T dZ, the input
side) stay single NumPy GEMMs outside the loop.

``*_forward_into`` / ``*_backward_into`` work on the layer's buffers in place;
``lstm_forward`` / ``lstm_backward`` / ``gru_forward`` / ``gru_backward`` take and return plain
arrays (the readable interface).
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np

from ... import threads
from . import fused
from .orientation import compiled_weight_transposed

try:  # optional, as numba: without SciPy the layers run their own loops
    from scipy.linalg import cython_blas
except ImportError:  # pragma: no cover - exercised where scipy is absent
    cython_blas = None

MIN_BLOCK_ROWS = 4   # a batch is cut into 2 blocks when each gets at least this many rows
MAX_THREADS = 2      # blocks per batch, and the most threads one call uses
TRANSPOSED_WEIGHTS = None   # per-step products: None = by the shape (orientation.py), or force True/False


def available() -> bool:
    """numba and scipy importable, and neither the fused kernels nor these loops switched off
    (RNNLAB_FUSED=0, RNNLAB_COMPILED=0)."""
    return fused.available() and cython_blas is not None and os.environ.get("RNNLAB_COMPILED", "1") != "0"


def missing() -> str:
    """Why ``available()`` is False ('' when it is True): what to install or unset."""
    if fused.numba is None:
        return "numba is not installed (pip install 'rnnlab[fast]')"
    if cython_blas is None:
        return "scipy is not installed (pip install 'rnnlab[fast]')"
    if not fused.available():
        return "RNNLAB_FUSED=0 switches the compiled kernels off"
    if os.environ.get("RNNLAB_COMPILED", "1") == "0":
        return "RNNLAB_COMPILED=0 switches the compiled loops off"
    return ""


def row_blocks(B: int) -> list:
    """The fixed blocks of batch rows [(b0, b1), ...]: two halves when each gets MIN_BLOCK_ROWS
    rows, else one. Chosen by B alone, so a result never depends on how many threads ran."""
    if B >= MAX_THREADS * MIN_BLOCK_ROWS:
        cut = (B + 1) // 2
        return [(0, cut), (cut, B)]
    return [(0, B)]


_per_thread = threading.local()


def default_threads() -> int:
    """Threads for one call: MAX_THREADS, fewer under ``threads_limit`` or when rnnlab's thread
    policy allows fewer (``rnnlab.threads``: the CPUs available, the machine's load, ``--threads``,
    ``RNNLAB_THREADS``, ``OPENBLAS_NUM_THREADS`` at start)."""
    limit = getattr(_per_thread, "limit", None)
    return max(1, min(MAX_THREADS, limit or MAX_THREADS, threads.kernel_threads()))


@contextmanager
def threads_limit(n: int):
    """Calls from this thread use at most ``n`` threads inside (results do not change)."""
    previous = getattr(_per_thread, "limit", None)
    _per_thread.limit = int(n)
    try:
        yield
    finally:
        _per_thread.limit = previous


# ---- BLAS: one thread while a compiled loop runs --------------------------------------------------
_limit_lock = threading.Lock()
_limit_depth = 0
_limit_state: dict = {}


@contextmanager
def _single_threaded_blas():
    """Run the BLAS single-threaded inside, restoring its setting when the last of overlapping
    calls (from several threads) leaves. Without threadpoolctl the BLAS keeps its own setting."""
    global _limit_depth
    with _limit_lock:
        if _limit_depth == 0:
            try:
                from threadpoolctl import ThreadpoolController
            except ImportError:
                _limit_state["limit"] = None
            else:
                if "controller" not in _limit_state:
                    _limit_state["controller"] = ThreadpoolController()
                _limit_state["limit"] = _limit_state["controller"].limit(limits=1, user_api="blas")
        _limit_depth += 1
    try:
        yield
    finally:
        with _limit_lock:
            _limit_depth -= 1
            if _limit_depth == 0 and _limit_state.get("limit") is not None:
                _limit_state.pop("limit").restore_original_limits()


_executor = None
_pair_executor = None


def run_pair(first, second):
    """(first(), second()): ``second`` on a helper thread while ``first`` runs here, each limited
    to one thread inside, for two independent calls that spend their time in compiled loops (GIL
    released), e.g. the two directions of a bidirectional layer. Blocks follow from shapes alone,
    so the results are those of the calls in turn, bit for bit. The BLAS is single-threaded for
    the whole pair (set before either starts, so no setting changes under a running product: each
    call's NumPy products run on its own core). An exception in either is raised after both have
    finished. Called where the limit is already 1 (nested): in turn."""
    global _pair_executor
    if getattr(_per_thread, "limit", None) == 1:
        return first(), second()

    def one_thread(call):
        with threads_limit(1):
            return call()
    with _limit_lock:
        if _pair_executor is None:
            _pair_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rnnlab-pair")
    with _single_threaded_blas():
        pending = _pair_executor.submit(one_thread, second)
        try:
            result = one_thread(first)
        except BaseException:
            pending.exception()     # wait: the helper's call must not outlive this one
            raise
        return result, pending.result()


def run_row_halves(run, N: int, min_rows: int) -> None:
    """run(r0, r1) over rows [0, N): two halves on two threads (``default_threads``) when each
    gets at least ``min_rows`` rows, else once. For kernels that treat each row on its own (GIL
    released), so the result is the same, bit for bit, however many threads ran."""
    blocks = [(0, (N + 1) // 2), ((N + 1) // 2, N)] if N >= 2 * min_rows else [(0, N)]
    _run_blocks(run, blocks, default_threads())


def _run_blocks(run, blocks, threads):
    """run(b0, b1) for every block: with 2 threads the second block on a helper thread (the
    compiled loops release the GIL), the first here."""
    global _executor
    if threads <= 1 or len(blocks) == 1:
        for b0, b1 in blocks:
            run(b0, b1)
        return
    with _limit_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=MAX_THREADS - 1, thread_name_prefix="rnnlab-compiled")
    pending = [_executor.submit(run, b0, b1) for b0, b1 in blocks[1:]]
    run(*blocks[0])
    for p in pending:
        p.result()


if fused.numba is not None and cython_blas is not None:
    import numba
    from llvmlite import ir
    from numba.core import types
    from numba.extending import get_cython_function_address, intrinsic

    _GEMM = {np.dtype(np.float32): get_cython_function_address("scipy.linalg.cython_blas", "sgemm"),
             np.dtype(np.float64): get_cython_function_address("scipy.linalg.cython_blas", "dgemm")}

    @intrinsic
    def _call_gemm(typingctx, fn, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc):
        """Call the Fortran-convention ?gemm at address ``fn``; every argument is an address.
        (The address comes in as an argument, not as a constant, so the compiled code can be
        cached on disk.)"""
        args = (fn, transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
        if not all(isinstance(x, types.Integer) for x in args):
            return None

        def codegen(context, builder, signature, llargs):
            ptr = ir.IntType(8).as_pointer()
            fnty = ir.FunctionType(ir.VoidType(), [ptr] * 13)
            gemm = builder.inttoptr(llargs[0], fnty.as_pointer())
            builder.call(gemm, [builder.inttoptr(v, ptr) for v in llargs[1:]])
            return context.get_dummy_value()
        return types.void(*args), codegen

    def _kernel(fn):
        """njit, nogil, cached on disk where numba finds a writable folder."""
        try:
            return numba.njit(cache=True, nogil=True)(fn)
        except RuntimeError:
            return numba.njit(nogil=True)(fn)

    # The per-step product, in column-major BLAS terms (row-major memory read as its transpose):
    # forward r^T (G, nb) = op(A) h^T, backward dh^T (H, nb) = op(A) dz^T (+ dh^T for GRU).
    # A is the weight, stored (H, G) or transposed (G, H), and the wrapper sets transa, m, n, k
    # and the leading dimensions for it in ``chars`` and ``ints`` (``_product``).

    @_kernel
    def _step_product(gemm, A, x, out, beta, consts, ints, chars):
        """out^T = op(A) x^T + beta out^T for the rows at addresses ``x`` and ``out``: the one
        ?gemm call of every loop below; ``beta`` is the address of 0 or 1 in ``consts``."""
        p, c = ints.ctypes.data, chars.ctypes.data
        _call_gemm(gemm, c, c + 1, p, p + 4, p + 8, consts.ctypes.data, A.ctypes.data, p + 12, x, p + 16, beta,
                   out, p + 20)

    @_kernel
    def _lstm_forward_rows(gemm, Z, A, Hs, Cs, TC, real, masked, b0, b1, r, consts, ints, chars):
        """All T steps of rows [b0, b1). A: Us or its transpose; r (b1-b0, 4H) scratch; consts
        (2,) = [1, 0] in Z's dtype, ints (6,) int32 = m, n, k, lda, ldb, ldc, chars (2,) uint8 =
        transa, transb: the BLAS's by-address arguments."""
        T, B, G = Z.shape
        H = Hs.shape[2]
        size = Z.itemsize
        zero = consts.ctypes.data + size
        for t in range(T):
            h_prev = Hs.ctypes.data + (t * B + b0) * H * size
            _step_product(gemm, A, h_prev, r.ctypes.data, zero, consts, ints, chars)   # r = h_{t-1} Us
            fused.lstm_forward_step(Z[t, b0:b1], r, Cs[t, b0:b1], Cs[t + 1, b0:b1], TC[t, b0:b1],
                                    Hs[t + 1, b0:b1])
            if masked:
                for b in range(b0, b1):
                    if real[t, b] == 0:
                        Hs[t + 1, b] = Hs[t, b]
                        Cs[t + 1, b] = Cs[t, b]

    @_kernel
    def _lstm_backward_rows(gemm, gates, A, Cs, TC, dH, dZ, dh, dc, real, masked, b0, b1,
                            consts, ints, chars):
        """All T steps backward of rows [b0, b1): dZ (T, B, 4H) out, dH (T, B, H) in (becomes the
        whole dL/dh_t), dh, dc (B, H): in the gradients of the final states, out those of the
        initial ones. A: U or its transpose; the rest as in ``_lstm_forward_rows``."""
        T, B, G = gates.shape
        H = dh.shape[1]
        size = gates.itemsize
        zero = consts.ctypes.data + size
        dh_rows, dc_rows = dh[b0:b1], dc[b0:b1]
        dh_next = dh.ctypes.data + b0 * H * size
        for t in range(T - 1, -1, -1):
            fused.lstm_backward_step(gates[t, b0:b1], Cs[t, b0:b1], TC[t, b0:b1], dH[t, b0:b1],
                                     dh_rows, dc_rows, real[t, b0:b1], dZ[t, b0:b1])
            dz = dZ.ctypes.data + (t * B + b0) * G * size
            _step_product(gemm, A, dz, dh_next, zero, consts, ints, chars)   # dh_{t-1} = dz_t U^T
            if masked:
                for b in range(b0, b1):
                    if real[t, b] == 0:
                        dh[b] += dH[t, b]     # a masked step passes dh_t on unchanged

    @_kernel
    def _gru_forward_rows(gemm, Z, A, b_hh, Hs, HZ, real, masked, b0, b1, consts, ints, chars):
        """GRU (reset_after), all T steps of rows [b0, b1): Z (T, B, 3H) becomes the gates
        [z, r, hh]; HZ (T, B, 3H) out: h_{t-1} Us, its h block + b_hh. A: Us or its transpose;
        the rest as in ``_lstm_forward_rows``."""
        T, B, G = Z.shape
        H = Hs.shape[2]
        size = Z.itemsize
        zero = consts.ctypes.data + size
        for t in range(T):
            h_prev = Hs.ctypes.data + (t * B + b0) * H * size
            hz = HZ.ctypes.data + (t * B + b0) * G * size
            _step_product(gemm, A, h_prev, hz, zero, consts, ints, chars)   # hz = h_{t-1} Us
            fused.gru_forward_step(Z[t, b0:b1], HZ[t, b0:b1], b_hh, Hs[t, b0:b1], Hs[t + 1, b0:b1])
            if masked:
                for b in range(b0, b1):
                    if real[t, b] == 0:
                        Hs[t + 1, b] = Hs[t, b]

    @_kernel
    def _gru_backward_rows(gemm, gates, HZ, A, Hs, dH, dHZ, dXh, dh, real, b0, b1, consts, ints, chars):
        """GRU (reset_after), all T steps backward of rows [b0, b1): dHZ (T, B, 3H) and dXh
        (T, B, H) out (``fused.gru_backward_step``), dH in (becomes the whole dL/dh_t), dh (B, H)
        in dL/d(final h), out dL/d(initial h): the kernel leaves the direct path in it and the
        product adds dhz_t U^T (beta = 1). A masked row needs nothing more: its dhz is 0."""
        T, B, G = gates.shape
        H = dh.shape[1]
        size = gates.itemsize
        one = consts.ctypes.data
        dh_rows = dh[b0:b1]
        dh_next = dh.ctypes.data + b0 * H * size
        for t in range(T - 1, -1, -1):
            fused.gru_backward_step(gates[t, b0:b1], HZ[t, b0:b1], Hs[t, b0:b1], dH[t, b0:b1], dh_rows,
                                    real[t, b0:b1], dHZ[t, b0:b1], dXh[t, b0:b1])
            dhz = dHZ.ctypes.data + (t * B + b0) * G * size
            _step_product(gemm, A, dhz, dh_next, one, consts, ints, chars)   # dh_{t-1} += dhz_t U^T


def _weight_operand(direction, W, B):
    """The weight as the per-step product reads it: W (H, G) as stored, or a transposed copy
    (G, H), by the rule of the shapes (``orientation.compiled_weight_transposed``, for the rows
    of the first block; ``TRANSPOSED_WEIGHTS`` forces one). Returns (A, transposed)."""
    H, G = W.shape
    if TRANSPOSED_WEIGHTS is not None:
        transposed = bool(TRANSPOSED_WEIGHTS)
    else:
        transposed = compiled_weight_transposed(direction, row_blocks(B)[0][1], H, G)
    return (np.ascontiguousarray(W.T) if transposed else W), transposed


def _by_address(direction, A, transposed, nb, H, G):
    """The BLAS's by-address arguments for one block of nb rows: consts [1, 0] in A's dtype,
    ints [m, n, k, lda, ldb, ldc], chars [transa, transb]. Forward: op(A) (G, H) times h^T
    (H, nb); backward: op(A) (H, G) times dz^T (G, nb); A's rows are its leading dimension."""
    if direction == "forward":
        m, k, transa = G, H, ("T" if transposed else "N")
    else:
        m, k, transa = H, G, ("N" if transposed else "T")
    return (np.array([1.0, 0.0], A.dtype), np.array([m, nb, k, A.shape[1], k, m], np.int32),
            np.array([ord(transa), ord("N")], np.uint8))


def _check(what, dtype, buffers):
    """buffers: (name, array, shape) triples; each must be a C-contiguous ``dtype`` NumPy array
    of that shape (the compiled loop reads them by address)."""
    if not available():
        raise RuntimeError(f"compiled {what} loop unavailable: {missing()}")
    if np.dtype(dtype) not in (np.float32, np.float64):
        raise ValueError(f"compiled {what} loop: float32 or float64 only, got {dtype}")
    for name, a, shape in buffers:
        problem = None
        if not isinstance(a, np.ndarray):
            problem = f"a {type(a).__name__}"
        elif tuple(a.shape) != tuple(shape):
            problem = f"of shape {tuple(a.shape)}"
        elif a.dtype != dtype or not a.flags.c_contiguous:
            problem = f"{a.dtype}, {'' if a.flags.c_contiguous else 'not '}C-contiguous"
        if problem:
            raise ValueError(f"compiled {what} loop: {name} must be a C-contiguous {np.dtype(dtype)} NumPy "
                             f"array of shape {tuple(shape)}, got {problem}")


def _launch(B, threads, run):
    """run(b0, b1) for the row blocks of the shape, on ``threads`` threads (None: by the
    machine), with the BLAS single-threaded."""
    blocks = row_blocks(B)
    threads = default_threads() if threads is None else max(1, int(threads))
    threads = min(threads, len(blocks))
    with _single_threaded_blas():
        _run_blocks(run, blocks, threads)


def _real_or_ones(real, T, B, dtype):
    return (False, np.ones((T, B), dtype)) if real is None else (True, real)


def lstm_forward_into(Z, Us, Hs, Cs, TC, real=None, threads=None) -> None:
    """The whole forward in place on the layer's buffers (module docstring): Z becomes the gates,
    Hs[1:], Cs[1:], TC are written; real (T, B) in Z's dtype or None (every step real)."""
    T, B, G = Z.shape
    H, dtype = G // 4, Z.dtype
    masked, real = _real_or_ones(real, T, B, dtype)
    _check("LSTM", dtype, [("Z", Z, (T, B, 4 * H)), ("Us", Us, (H, G)), ("Hs", Hs, (T + 1, B, H)),
                           ("Cs", Cs, (T + 1, B, H)), ("TC", TC, (T, B, H)), ("real", real, (T, B))])

    A, transposed = _weight_operand("forward", Us, B)

    def run(b0, b1):
        r = np.empty((b1 - b0, G), dtype)
        _lstm_forward_rows(_GEMM[dtype], Z, A, Hs, Cs, TC, real, masked, b0, b1, r,
                           *_by_address("forward", A, transposed, b1 - b0, H, G))
    _launch(B, threads, run)


def lstm_backward_into(gates, U, Cs, TC, dH, dZ, dh, dc, real=None, threads=None) -> None:
    """The whole backward loop in place: gates (T, B, 4H) and Cs, TC as the forward left them;
    U (H, 4H) unscaled; dH (T, B, H) the gradient reaching each step's output (overwritten with
    the whole dL/dh_t); dZ (T, B, 4H) out: dL/d(x_t W + h_{t-1} U + b); dh, dc (B, H): in
    dL/d(final h, c), out dL/d(initial h, c). dU and the input side are GEMMs after this."""
    T, B, G = gates.shape
    H, dtype = G // 4, gates.dtype
    masked, real = _real_or_ones(real, T, B, dtype)
    _check("LSTM", dtype, [("gates", gates, (T, B, 4 * H)), ("U", U, (H, G)), ("Cs", Cs, (T + 1, B, H)),
                           ("TC", TC, (T, B, H)), ("dH", dH, (T, B, H)), ("dZ", dZ, (T, B, G)),
                           ("dh", dh, (B, H)), ("dc", dc, (B, H)), ("real", real, (T, B))])

    A, transposed = _weight_operand("backward", U, B)

    def run(b0, b1):
        _lstm_backward_rows(_GEMM[dtype], gates, A, Cs, TC, dH, dZ, dh, dc, real, masked, b0, b1,
                            *_by_address("backward", A, transposed, b1 - b0, H, G))
    _launch(B, threads, run)


def gru_forward_into(Z, Us, b_hh, Hs, HZ, real=None, threads=None) -> None:
    """GRU (reset_after) forward in place on the layer's buffers: Z (T, B, 3H) = x_t W + input
    biases with the z, r columns halved, becomes the gates [z, r, hh]; Us (H, 3H) U with the
    z, r columns halved; b_hh (H,) the recurrent bias of the h block; Hs (T+1, B, H) with Hs[0]
    the initial state; HZ (T, B, 3H) out: h_{t-1} Us, its h block + b_hh (backward reads it)."""
    T, B, G = Z.shape
    H, dtype = G // 3, Z.dtype
    masked, real = _real_or_ones(real, T, B, dtype)
    _check("GRU", dtype, [("Z", Z, (T, B, 3 * H)), ("Us", Us, (H, G)), ("b_hh", b_hh, (H,)),
                          ("Hs", Hs, (T + 1, B, H)), ("HZ", HZ, (T, B, G)), ("real", real, (T, B))])

    A, transposed = _weight_operand("forward", Us, B)

    def run(b0, b1):
        _gru_forward_rows(_GEMM[dtype], Z, A, b_hh, Hs, HZ, real, masked, b0, b1,
                          *_by_address("forward", A, transposed, b1 - b0, H, G))
    _launch(B, threads, run)


def gru_backward_into(gates, HZ, U, Hs, dH, dHZ, dXh, dh, real=None, threads=None) -> None:
    """GRU (reset_after) backward loop in place: gates, HZ, Hs as the forward left them; U (H, 3H)
    unscaled; dH (T, B, H) in (overwritten with the whole dL/dh_t); out: dHZ (T, B, 3H), the
    gradient of h_{t-1} U + b[1], and dXh (T, B, H), that of x_t W_h + b[0]_h (the input side's
    dXZ is dHZ with its h block replaced by dXh); dh (B, H): in dL/d(final h), out dL/d(h_0)."""
    T, B, G = gates.shape
    H, dtype = G // 3, gates.dtype
    _, real = _real_or_ones(real, T, B, dtype)
    _check("GRU", dtype, [("gates", gates, (T, B, 3 * H)), ("HZ", HZ, (T, B, G)), ("U", U, (H, G)),
                          ("Hs", Hs, (T + 1, B, H)), ("dH", dH, (T, B, H)), ("dHZ", dHZ, (T, B, G)),
                          ("dXh", dXh, (T, B, H)), ("dh", dh, (B, H)), ("real", real, (T, B))])

    A, transposed = _weight_operand("backward", U, B)

    def run(b0, b1):
        _gru_backward_rows(_GEMM[dtype], gates, HZ, A, Hs, dH, dHZ, dXh, dh, real, b0, b1,
                           *_by_address("backward", A, transposed, b1 - b0, H, G))
    _launch(B, threads, run)


# ---- the plain interface ---------------------------------------------------------------------------
def _sigmoid_scale(G, H, dtype):
    """(G,): 0.5 on the sigmoid columns (LSTM i, f, o; GRU z, r), 1 on the tanh ones (exact scalings)."""
    scale = np.full(G, 0.5, dtype)
    scale[2 * H:3 * H] = 1.0
    return scale


def _real(mask, T, B, dtype):
    if mask is None:
        return None
    mask = np.asarray(mask)
    if mask.shape != (T, B):
        raise ValueError(f"compiled loop: mask must be (time, batch) = {(T, B)}, got {mask.shape}")
    return np.ascontiguousarray(mask, dtype=dtype)


def _initial(state, B, H, dtype):
    out = np.zeros((B, H), dtype)
    if state is not None:
        out[...] = state
    return out


def lstm_forward(xz, U, h0=None, c0=None, mask=None, threads=None):
    """xz (T, B, 4H) = x_t W + b (time-major, gates i, f, g, o), U (H, 4H), h0, c0 (B, H) or None
    (zeros), mask (T, B) bool or None -> (Hs, Cs, TC, gates): Hs, Cs (T+1, B, H) with the initial
    states first, TC (T, B, H) = tanh(c_t), gates (T, B, 4H) = [i, f, g, o]. A masked step keeps
    h and c (its output Hs[t+1] is the kept state: the layer multiplies outputs by the mask)."""
    xz = np.asarray(xz)
    T, B, G = xz.shape
    H, dtype = G // 4, xz.dtype
    scale = _sigmoid_scale(G, H, dtype)
    Z = np.multiply(xz, scale, dtype=dtype)
    Us = np.multiply(U, scale, dtype=dtype)
    Hs, Cs, TC = np.empty((T + 1, B, H), dtype), np.empty((T + 1, B, H), dtype), np.empty((T, B, H), dtype)
    Hs[0], Cs[0] = _initial(h0, B, H, dtype), _initial(c0, B, H, dtype)
    lstm_forward_into(Z, Us, Hs, Cs, TC, _real(mask, T, B, dtype), threads)
    return Hs, Cs, TC, Z


def lstm_backward(gates, U, Hs, Cs, TC, dH, dh_last=None, dc_last=None, mask=None, threads=None):
    """The backward of ``lstm_forward``: gates, Hs, Cs, TC as it returned them, U (H, 4H), dH
    (T, B, H) the gradient reaching each step's output, dh_last, dc_last (B, H) or None those of
    the final states -> (dxz (T, B, 4H), dU (H, 4H), dh0, dc0 (B, H)). The input side follows
    from dxz: dW = x^T dxz, db = dxz summed over T and B, dx = dxz W^T."""
    T, B, G = gates.shape
    H, dtype = G // 4, gates.dtype
    dH = np.array(dH, dtype=dtype, order="C")            # a copy: the loop overwrites it
    dh, dc = _initial(dh_last, B, H, dtype), _initial(dc_last, B, H, dtype)
    dZ = np.empty((T, B, G), dtype)
    U = np.ascontiguousarray(U, dtype=dtype)
    lstm_backward_into(gates, U, Cs, TC, dH, dZ, dh, dc, _real(mask, T, B, dtype), threads)
    dU = Hs[:-1].reshape(T * B, H).T @ dZ.reshape(T * B, G)
    return dZ, dU, dh, dc


def gru_forward(xz, U, b_rec, h0=None, mask=None, threads=None):
    """GRU with reset_after (Keras gate order z, r, h): xz (T, B, 3H) = x_t W + b[0] (time-major),
    U (H, 3H), b_rec (3H,) = b[1], h0 (B, H) or None, mask (T, B) or None -> (Hs, gates, HZ):
    Hs (T+1, B, H) with h0 first, gates (T, B, 3H) = [z, r, hh], HZ as ``gru_forward_into``."""
    xz = np.asarray(xz)
    T, B, G = xz.shape
    H, dtype = G // 3, xz.dtype
    scale = _sigmoid_scale(G, H, dtype)
    Z = np.asarray(xz, dtype=dtype).copy()
    Z[:, :, :2 * H] += np.asarray(b_rec, dtype)[:2 * H]   # the recurrent z, r biases add like input ones
    Z *= scale
    Us = np.multiply(U, scale, dtype=dtype)
    b_hh = np.array(np.asarray(b_rec)[2 * H:], dtype=dtype)
    Hs, HZ = np.empty((T + 1, B, H), dtype), np.empty((T, B, G), dtype)
    Hs[0] = _initial(h0, B, H, dtype)
    gru_forward_into(Z, Us, b_hh, Hs, HZ, _real(mask, T, B, dtype), threads)
    return Hs, Z, HZ


def gru_backward(gates, HZ, U, Hs, dH, dh_last=None, mask=None, threads=None):
    """The backward of ``gru_forward`` -> (dxz (T, B, 3H), dU (H, 3H), db_rec (3H,), dh0 (B, H)):
    dxz the gradient of xz (so dW = x^T dxz, db[0] = dxz summed, dx = dxz W^T), db_rec = db[1]."""
    T, B, G = gates.shape
    H, dtype = G // 3, gates.dtype
    dH = np.array(dH, dtype=dtype, order="C")
    dh = _initial(dh_last, B, H, dtype)
    dHZ, dXh = np.empty((T, B, G), dtype), np.empty((T, B, H), dtype)
    U = np.ascontiguousarray(U, dtype=dtype)
    gru_backward_into(gates, HZ, U, Hs, dH, dHZ, dXh, dh, _real(mask, T, B, dtype), threads)
    flat = dHZ.reshape(T * B, G)
    dU = Hs[:-1].reshape(T * B, H).T @ flat
    db_rec = flat.sum(axis=0)
    dxz = dHZ.copy()
    dxz[:, :, 2 * H:] = dXh
    return dxz, dU, db_rec, dh
