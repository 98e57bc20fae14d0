"""Data-parallel training on MPI (mpi4py): the layer a trainer calls, nothing more.

``mpiexec -n N rnnlab train ...`` starts N copies of the same program. Each copy (a *rank*)
holds the whole model, takes its share of every global batch, and after backward the ranks
average their gradients, so the optimizer steps identically everywhere::

    from rnnlab import distributed as dist

    w = dist.world()                        # rank, size (size 1 and no mpi4py without mpiexec)
    with dist.fail_fast():                  # an error on one rank aborts all (no rank hangs)
        dist.broadcast_(model.params)       # every rank starts from rank 0's weights (once the
                                            # model is built: Seq2Seq builds on its first forward)
        for x, y in global_batches:
            x, y = dist.shard(x, y)         # this rank's rows (LM: its parallel streams)
            loss = loss_fn.forward(model.forward(x), y)
            model.backward(loss_fn.backward())
            loss, count = dist.allreduce_mean_(model.grads, count=loss_fn.count, loss=loss)
            clip_grad_norm(model.grads, clip)   # on the averaged gradient: same on every rank
            optimizer.step(model.params, model.grads)
            if dist.is_writer(): log(loss)      # rank 0 alone writes files and progress

**Same numbers as one process.** A loss that is a mean over counted positions (tokens),
L = (1/N) sum_n l_n with N = sum_r n_r positions over the ranks, has the gradient

    dL/dw = sum_r (n_r / N) g_r,       g_r = d/dw [(1/n_r) sum_{n in rank r} l_n]

(g_r is what rank r's own backward computes). So each rank scales its gradient by n_r, one
``Allreduce(SUM)`` adds the scaled gradients *and* the counts (the count rides at the end of
the same flattened buffer, with the loss sum n_r L_r after it), and every rank divides by N.
With unequal shares (5 streams on 2 ranks, sentences of different lengths) this is exactly
the single-process gradient, up to the order of floating-point additions. Without ``count``
the result is the plain mean over ranks (right when every rank holds the same number of
positions).

**Detection.** An MPI launch is recognised from the environment the launcher sets
(``OMPI_COMM_WORLD_SIZE`` for Open MPI, ``PMI_SIZE`` for MPICH and Intel MPI,
``MV2_COMM_WORLD_SIZE`` for MVAPICH); only then is mpi4py imported (which initialises MPI).
Without these variables, or with ``RNNLAB_MPI=0``, ``world()`` is one process of size 1, every
helper is a no-op that returns its input, and mpi4py is never imported.

**CuPy.** Buffers are staged through host memory (Open MPI from pip is not CUDA-aware).
"""
from __future__ import annotations

import collections
import contextlib
import copy
import io
import dataclasses
import hashlib
import os
import sys
import traceback
from typing import NamedTuple

import numpy as np

from . import backend

# The variables each launcher sets in every process it starts: name -> launcher.
LAUNCH_VARIABLES = {"OMPI_COMM_WORLD_SIZE": "Open MPI", "PMI_SIZE": "MPICH / Intel MPI",
                    "MV2_COMM_WORLD_SIZE": "MVAPICH"}


class World:
    """This process's place in the job: ``rank`` in ``[0, size)``; ``comm`` is mpi4py's
    ``COMM_WORLD`` (None in a single process). Rank 0 is the writer."""

    def __init__(self, rank: int = 0, size: int = 1, comm=None):
        self.rank, self.size, self.comm = int(rank), int(size), comm
        self._buffers: dict = {}  # (length, dtype) -> host buffer reused by every step

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def is_writer(self) -> bool:
        return self.rank == 0

    def buffer(self, length: int, dtype) -> np.ndarray:
        key = (int(length), np.dtype(dtype).str)
        buf = self._buffers.get(key)
        if buf is None:
            buf = self._buffers[key] = np.empty(length, dtype=dtype)
        return buf

    def __repr__(self) -> str:
        return f"World(rank={self.rank}, size={self.size})"


_WORLD: World | None = None


def launched_by_mpi(environ=None) -> str | None:
    """The launcher variable that shows this process was started by mpiexec, or None.

    Reads the environment only (no import of mpi4py). ``RNNLAB_MPI=0`` forces None.
    """
    environ = os.environ if environ is None else environ
    if environ.get("RNNLAB_MPI", "").strip() == "0":
        return None
    for name in LAUNCH_VARIABLES:
        if environ.get(name, "").strip():
            return name
    return None


def world() -> World:
    """This process's ``World``, created on the first call: under mpiexec, mpi4py's
    COMM_WORLD; otherwise rank 0 of size 1 (mpi4py is then not imported)."""
    global _WORLD
    if _WORLD is None:
        variable = launched_by_mpi()
        if variable is None:
            _WORLD = World()
        else:
            try:
                from mpi4py import MPI
            except ImportError as e:
                raise RuntimeError(f"rnnlab was started by mpiexec ({variable}={os.environ[variable]}) but "
                                   f"mpi4py cannot be imported ({e}): pip install 'rnnlab[mpi]' "
                                   f"(or set RNNLAB_MPI=0 to run as a single process)") from None
            comm = MPI.COMM_WORLD
            _WORLD = World(comm.Get_rank(), comm.Get_size(), comm)
            if _WORLD.distributed:
                _install_excepthook()
    return _WORLD


def is_writer() -> bool:
    """True on the one process that writes checkpoints, metrics and progress (rank 0)."""
    return world().is_writer


# ---- splitting a global batch ------------------------------------------------------------------
def rows_of(n: int, rank: int | None = None, size: int | None = None, allow_empty: bool = False) -> slice:
    """The contiguous rows of a global batch of ``n`` rows that ``rank`` of ``size`` takes.

    Balanced: shares differ by at most one row, the first ``n % size`` ranks take the larger
    one; in rank order the shares tile ``[0, n)``. For the language model the rows are the
    parallel streams of truncated BPTT, so each rank carries the state of its own streams.
    Training needs a row on every rank (n >= size); evaluation may pass ``allow_empty=True``
    (e.g. the LM's final figures on 1 stream): the ranks past row n get an empty share and
    add zeros to ``allreduce_sum``.
    """
    if rank is None or size is None:
        w = world()
        rank, size = w.rank if rank is None else rank, w.size if size is None else size
    n, rank, size = int(n), int(rank), int(size)
    if not 0 <= rank < size:
        raise ValueError(f"rows_of: rank {rank} is not in [0, {size})")
    if n < size and not allow_empty:
        raise ValueError(f"a global batch of {n} rows cannot be split across {size} processes: each needs at "
                         f"least one row (use a batch of at least {size}, or fewer processes)")
    base, extra = divmod(n, size)
    start = rank * base + min(rank, extra)
    return slice(start, start + base + (rank < extra))


def shard(*arrays, rank: int | None = None, size: int | None = None, allow_empty: bool = False):
    """This rank's rows (``rows_of``) of each array (all with the same number of rows, axis 0).

    One array in, one out; several in, a tuple out; None passes through (an absent mask).
    """
    present = [a for a in arrays if a is not None]
    if not present:
        return arrays[0] if len(arrays) == 1 else arrays
    n = present[0].shape[0]
    for a in present:
        if a.shape[0] != n:
            raise ValueError(f"shard: arrays of {n} and {a.shape[0]} rows cannot be split together")
    rows = rows_of(n, rank, size, allow_empty)
    out = tuple(None if a is None else a[rows] for a in arrays)
    return out[0] if len(arrays) == 1 else out


def _is_rows(a) -> bool:
    """An array with a leading (row) axis (NumPy or CuPy)."""
    return hasattr(a, "shape") and hasattr(a, "__getitem__") and len(getattr(a, "shape", ())) > 0


def _parts(batch):
    """The items of a container batch (tuple, dict, dataclass), or None for a leaf."""
    if isinstance(batch, tuple):
        return list(batch)
    if isinstance(batch, dict):
        return list(batch.values())
    if dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        return [getattr(batch, f.name) for f in dataclasses.fields(batch)]
    return None


def batch_rows(batch) -> int | None:
    """The number of rows (examples) of a batch: the leading axis of its first array, or the
    length of its first list (``shard_batch`` says what a batch may be); None when it holds
    neither."""
    if _is_rows(batch) or isinstance(batch, list):
        return len(batch) if isinstance(batch, list) else int(batch.shape[0])
    for item in _parts(batch) or ():
        n = batch_rows(item)
        if n is not None:
            return n
    return None


def _take(item, rows: slice, n: int):
    if (_is_rows(item) and int(item.shape[0]) == n) or (isinstance(item, list) and len(item) == n):
        return item[rows]
    parts = _parts(item)
    if parts is None:
        return item  # a scalar, None, or an array of another length: the same for every rank
    taken = [_take(p, rows, n) for p in parts]
    if isinstance(item, dict):
        return dict(zip(item.keys(), taken))
    if isinstance(item, tuple):
        return type(item)(*taken) if hasattr(item, "_fields") else tuple(taken)
    out = copy.copy(item)  # a dataclass
    for f, value in zip(dataclasses.fields(item), taken):
        object.__setattr__(out, f.name, value)
    return out


def shard_batch(batch, rank: int | None = None, size: int | None = None, allow_empty: bool = True):
    """This rank's rows (``rows_of``) of a global batch of the usual kinds: an array (rows on
    axis 0), or a tuple / NamedTuple / dict / dataclass of arrays and per-example lists, nested.
    Every array whose leading axis, and every list whose length, is the batch's row count
    (``batch_rows``) is cut; anything else (scalars, None, arrays of another length) is passed
    on whole. The training loop calls it (``Task.shard_batch``) for every task: a task whose
    batch is laid out otherwise (time-major, say) overrides ``Task.shard_batch``.

    ``allow_empty`` (default): a batch with fewer rows than processes gives the last ranks
    zero rows (the loop then adds zeros to the all-reduce). In a single process: ``batch``.
    """
    if size is None and not world().distributed:
        return batch
    n = batch_rows(batch)
    if n is None:
        raise ValueError(f"shard_batch: cannot find the rows of a {type(batch).__name__} batch (an array, or "
                         f"a tuple / dict / dataclass of arrays): override Task.shard_batch")
    return _take(batch, rows_of(n, rank, size, allow_empty), n)


def allgather_list(items) -> list:
    """Every rank's ``items`` (a list), concatenated in rank order, on every rank: the inverse
    of taking ``rows_of`` a list, e.g. the decoded outputs of each rank's share of the
    validation pairs. Pickled: for evaluation results, not every step."""
    w = world()
    if not w.distributed:
        return list(items)
    return [x for part in w.comm.allgather(list(items)) for x in part]


def any_rank(*flags) -> tuple:
    """For each flag, whether it is true on any rank (one small ``Allreduce``): decisions taken
    from a rank's own clock (a time budget, a checkpoint every 60 s) must be the same on every
    rank, since collectives follow them."""
    return tuple(bool(v > 0) for v in allreduce_sum([bool(f) for f in flags]))


def barrier() -> None:
    """Wait until every rank gets here (e.g. before the ranks read a file rank 0 just wrote)."""
    w = world()
    if w.distributed:
        w.comm.Barrier()


def rank_seed(seed, *keys) -> int:
    """A 63-bit seed derived from ``seed`` and ``keys`` (rank, step ...): the same numbers give
    the same seed in every run, different ranks get independent streams (``SeedSequence``)."""
    entropy = [0 if seed is None else int(seed)] + [int(k) for k in keys]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))


def allgather_rows(x):
    """The global array whose rows ``rows_of`` split: every rank's share, in rank order, on
    every rank. For checkpoints (the LM's carried state, (B_r, H) per rank -> (B, H)); the
    inverse is ``shard``, which also re-splits for a different number of processes on resume."""
    w = world()
    if not w.distributed:
        return x
    parts = w.comm.allgather(backend.to_numpy(x))  # pickled: for checkpoints, not every step
    return backend.xp.asarray(np.concatenate(parts, axis=0))


# ---- reductions ------------------------------------------------------------------------------
class Reduced(NamedTuple):
    """What one step's all-reduce gives back: the global mean loss (None when no loss was
    passed) and the global count of positions (None when no count was passed)."""
    loss: float | None
    count: float | None


def _unique(arrays):
    """The arrays without repeats of the same object (a tied weight may be listed twice)."""
    seen, out = set(), []
    for a in arrays:
        if id(a) not in seen:
            seen.add(id(a))
            out.append(a)
    return out


def allreduce_mean_(grads, count=None, loss=None) -> Reduced:
    """Average ``grads`` (a list of arrays) over the ranks, in place, with one ``Allreduce``.

    Without ``count``: g <- (1/size) sum_r g_r. With ``count`` (this rank's number of counted
    positions, ``loss.count``): g <- sum_r n_r g_r / sum_r n_r, the gradient of the mean over
    every rank's positions, exact also for unequal shares. ``loss`` (this rank's mean loss) is
    reduced in the same message to the global mean sum_r n_r L_r / N (or the plain mean of the
    ranks' losses without ``count``). Returns ``Reduced(loss, count)`` (global values).

    The arrays are packed into one flattened buffer [n_r g_r..., n_r, n_r L_r] of their dtype,
    reduced in place (``MPI.IN_PLACE``) and unpacked. In a single process nothing is touched.
    Call it between ``model.backward`` and gradient clipping / ``optimizer.step``.
    """
    w = world()
    if not w.distributed:
        return Reduced(None if loss is None else float(loss), None if count is None else float(count))
    from mpi4py import MPI

    grads = _unique(grads)
    dtype = np.result_type(*[g.dtype for g in grads]) if grads else np.dtype(np.float64)
    weight = 1.0 if count is None else float(count)
    total = sum(int(g.size) for g in grads)
    buf = w.buffer(total + 2, dtype)
    offset = 0
    for g in grads:
        part = buf[offset:offset + g.size].reshape(g.shape)
        np.multiply(backend.to_numpy(g), weight, out=part)
        offset += g.size
    buf[total] = weight
    buf[total + 1] = 0.0 if loss is None else float(loss) * weight
    w.comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
    n = float(buf[total])  # the number of ranks, or the global count
    scale = 1.0 / n if n > 0 else 0.0  # no position counted anywhere: the gradient is zero
    offset = 0
    for g in grads:
        part = buf[offset:offset + g.size].reshape(g.shape)
        if isinstance(g, np.ndarray):
            np.multiply(part, scale, out=g)
        else:  # a CuPy array: back to the device
            part *= scale
            g[...] = backend.xp.asarray(part)
        offset += g.size
    mean_loss = None if loss is None else float(buf[total + 1]) * scale
    return Reduced(mean_loss, None if count is None else n)


def allreduce_sum(values) -> np.ndarray:
    """Element-wise sum over the ranks of a few numbers (evaluation: [nll sum, token count],
    each rank over its share of the streams or pairs), as a float64 array on every rank."""
    out = np.array(values, dtype=np.float64).reshape(-1)
    w = world()
    if w.distributed:
        from mpi4py import MPI

        w.comm.Allreduce(MPI.IN_PLACE, out, op=MPI.SUM)
    return out


def broadcast_(params, root: int = 0) -> None:
    """Overwrite every rank's ``params`` (in place) with those of rank ``root``: one ``Bcast``
    of one flattened buffer. Call it once after the model is built (or loaded), so the ranks
    start identical even when their seeds differ.

    Layers build their weights on their first forward: a model that builds lazily (Seq2Seq)
    must run one forward pass first (in eval mode, on any batch), or its weights would not be
    in ``params`` yet. An empty list is therefore refused."""
    params = _unique(params)
    if not params:
        raise ValueError("broadcast_: no weights to broadcast: the model builds its layers on their first "
                         "forward, so run one forward pass (model.eval(); model.forward(batch)) first")
    w = world()
    if not w.distributed:
        return
    dtype = np.result_type(*[p.dtype for p in params]) if params else np.dtype(np.float64)
    buf = w.buffer(sum(int(p.size) for p in params), dtype)
    offset = 0
    if w.rank == root:
        for p in params:
            buf[offset:offset + p.size] = backend.to_numpy(p).reshape(-1)
            offset += p.size
    w.comm.Bcast(buf, root=root)
    xp, offset = backend.xp, 0
    for p in params:
        p[...] = xp.asarray(buf[offset:offset + p.size].reshape(p.shape))
        offset += p.size


def params_in_sync(params) -> bool:
    """True when every rank holds bit-identical ``params`` (a SHA-256 of their bytes is
    gathered). A cheap guard to run before rank 0 writes a checkpoint that stands for all."""
    w = world()
    if not w.distributed:
        return True
    digest = hashlib.sha256()
    for p in _unique(params):
        digest.update(np.ascontiguousarray(backend.to_numpy(p)).tobytes())
    return len(set(w.comm.allgather(digest.hexdigest()))) == 1


# ---- faults ------------------------------------------------------------------------------------
def abort(message: str, code: int = 1) -> None:
    """Print ``rnnlab: rank R of N: MESSAGE; aborting all N processes`` on stderr and end the
    whole job (``MPI.COMM_WORLD.Abort``): the other ranks may be waiting in a collective and
    would otherwise wait forever. In a single process: print the message and exit ``code``."""
    w = world()
    line = " ".join(str(message).split())  # one line, whatever the exception's text held
    if not w.distributed:
        print(f"rnnlab: {line}", file=sys.stderr, flush=True)
        raise SystemExit(code)
    # the real stderr: a rank that is not the writer may have sys.stderr silenced (quiet_ranks)
    print(f"rnnlab: rank {w.rank} of {w.size}: {line}; aborting all {w.size} processes",
          file=sys.__stderr__ or sys.stderr, flush=True)
    sys.stdout.flush()
    w.comm.Abort(code)


def _install_excepthook() -> None:
    """Abort the job on an exception that nothing caught. Without this, the failing rank
    would finalize MPI at exit while the others wait in their next collective forever."""
    previous = sys.excepthook

    def hook(kind, value, tb):
        previous(kind, value, tb)
        if issubclass(kind, KeyboardInterrupt):
            abort("interrupted", 130)
        abort(f"{kind.__name__}: {value}", 1)

    sys.excepthook = hook


@contextlib.contextmanager
def fail_fast():
    """Run a block so that an error on one rank ends every rank.

    Under MPI, an exception leaving the block prints its traceback, then the one-line
    ``abort`` message naming the rank, and aborts the job with exit code 1 (a ``SystemExit``
    with a non-zero code, e.g. the CLI's exit 2 for a user's mistake, keeps its code; Ctrl-C
    gives 130). In a single process the block runs unchanged: exceptions propagate as usual.
    (``world()`` also installs a ``sys.excepthook`` that aborts on an uncaught exception, but
    a ``SystemExit`` never reaches that hook: a rank leaving with ``exit(2)`` outside this block
    would leave the others waiting.)
    """
    w = world()
    if not w.distributed:
        yield
        return
    try:
        yield
    except SystemExit as e:
        if e.code in (None, 0):
            raise
        code = e.code if isinstance(e.code, int) else 1
        abort(f"exited with code {code}" + ("" if isinstance(e.code, int) else f": {e.code}"), code)
    except KeyboardInterrupt:
        abort("interrupted", 130)
    except BaseException as e:  # noqa: BLE001 - any error must take the job down, not hang it
        traceback.print_exc(file=sys.__stderr__ or sys.stderr)
        abort(f"{type(e).__name__}: {e}", 1)


@contextlib.contextmanager
def quiet_ranks(keep_lines: int = 20):
    """Run a block with the stdout and stderr of every rank but the writer held back, so a
    command prints its logs, results and ``--json`` line once. When an exception (or a
    non-zero exit) leaves the block on such a rank, the last ``keep_lines`` lines it wrote go
    to the real stderr first: the error that takes the job down is shown from any rank. In a
    single process, or with ``RNNLAB_MPI_QUIET=0``, nothing changes."""
    w = world()
    if not w.distributed or w.is_writer or os.environ.get("RNNLAB_MPI_QUIET", "").strip() == "0":
        yield
        return
    saved, held = (sys.stdout, sys.stderr), _Tail(keep_lines)
    sys.stdout = sys.stderr = held
    try:
        yield
    except BaseException as e:
        if not (isinstance(e, SystemExit) and e.code in (None, 0)):
            real = sys.__stderr__ or saved[1]
            real.write("".join(f"[rank {w.rank}] {line}\n" for line in held.lines))
            real.flush()
        raise
    finally:
        sys.stdout, sys.stderr = saved


class _Tail(io.TextIOBase):
    """A text stream that keeps only its last ``n`` lines (what ``quiet_ranks`` holds back)."""

    def __init__(self, n: int):
        self.lines: collections.deque = collections.deque(maxlen=n)
        self._open = ""

    def write(self, text: str) -> int:
        *done, self._open = (self._open + text).split("\n")
        self.lines.extend(line for line in done if line.strip())
        return len(text)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False
