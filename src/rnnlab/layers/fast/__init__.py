"""The speed machinery of the layers and the loss, fenced off behind one switch.

Everything here computes what the readable modules (``recurrent.py``, ``cells.py``,
``steps.py``, ``bptt.py``, ``core.py``, ``losses.py``) compute, faster, and the tests prove it
equal to them (float64):

    base.py         FastLoop: buffers kept between calls, the per-step product, blocks, chunks
    loops.py        the fast loops of SimpleRNN, LSTM, GRU (one FastLoop subclass per kind)
    orientation.py  the rule of the shapes that orients the per-step products (never a timing)
    fused.py        numba step kernels for LSTM and GRU, and the softmax's exp_rows
    compiled.py     whole-sequence LSTM/GRU loops in one numba call; the thread helpers
    softmax.py      the exponentials of SoftmaxCrossEntropy in row blocks, or one numba kernel
    dense.py        Dense's kernel and bias as one [W; b]: the bias inside the GEMM

**The switch.** ``enabled()`` is True unless ``RNNLAB_FAST=0`` is set or ``set_enabled(False)``
was called (``set_enabled(None)`` goes back to the environment). Off, every recurrent layer runs
its reference loop (``bptt.ReferenceLoop``), Dense and the loss their plain products. On, on
the NumPy backend, they run the forms here (CuPy always runs the plain ones); within them, ``RNNLAB_FUSED=0`` keeps the fused kernels off and ``RNNLAB_COMPILED=1`` turns
the (opt-in) compiled loops on, as before.

**The one hook.** The readable modules never import this package. ``rnnlab.layers`` imports
it last, and it registers its fast forms in ``layers/hook.py`` ("recurrent_loop": ``loop_for``,
"softmax_exp": ``softmax.softmax_exp``, "dense_build" / "dense_forward" / "dense_backward":
``dense.py``); a layer asks the hook for its fast loop on every forward and runs its reference
loop on None.
"""
from __future__ import annotations

import os

from ... import backend
from .. import hook
from . import compiled, dense, fused, softmax
from .base import FastLoop
from .loops import LOOPS

_enabled: bool | None = None   # None: the environment decides (RNNLAB_FAST)


def enabled() -> bool:
    """Whether the fast loops run (``set_enabled``, else ``RNNLAB_FAST`` != "0")."""
    if _enabled is not None:
        return _enabled
    return os.environ.get("RNNLAB_FAST", "1") != "0"


def set_enabled(flag: bool | None) -> None:
    """True / False: switch the fast loops on or off in this process; None: as ``RNNLAB_FAST`` says."""
    global _enabled
    _enabled = None if flag is None else bool(flag)


def loop_for(layer) -> FastLoop | None:
    """The fast loop of ``layer`` (one per layer, kept on it with its buffers), or None where
    it runs its reference loop: switched off, or another backend than NumPy (CuPy)."""
    if not enabled() or backend.backend_name() != "numpy":
        return None
    loop = layer.__dict__.get("_fast_loop")
    if loop is None:
        loop = layer._fast_loop = LOOPS[layer.KIND](layer)
    return loop


def runs_fused(layer) -> bool:
    """Whether ``layer`` (built or not) runs the fused kernels of ``fused.py`` in this process."""
    loop = loop_for(layer)
    return loop is not None and loop._fused(backend.floatx())


def runs_compiled(layer) -> bool:
    """Whether ``layer`` runs the compiled loops of ``compiled.py`` in this process."""
    loop = loop_for(layer)
    return loop is not None and loop._compiled(backend.floatx())


hook.register("recurrent_loop", loop_for)
hook.register("softmax_exp", softmax.softmax_exp)
hook.register("dense_build", dense.build)
hook.register("dense_forward", dense.forward)
hook.register("dense_backward", dense.backward)

__all__ = ["FastLoop", "compiled", "enabled", "fused", "loop_for", "runs_compiled", "runs_fused", "set_enabled"]
