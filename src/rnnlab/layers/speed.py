"""Choices the fast paths make by timing, kept so that a run can fix them.

A recurrent layer times the two orientations of its per-step product once per shape (see
``recurrent._Recurrent._step_product``). Which one runs changes the rounding, so a run resumed in
a new process (or another rank of a data-parallel run) must make the same choices: the trainer
saves ``timed_choices()`` with every checkpoint and calls ``set_timed_choices`` before resuming.
"""
from __future__ import annotations


def _table() -> dict:
    from .recurrent import _Recurrent

    return _Recurrent._orientation


def timed_choices() -> dict:
    """Every choice made so far in this process, JSON-serialisable:
    ``{"B,K,N,dtype": "transposed" | "plain"}``."""
    return {",".join(str(v) for v in key): ("transposed" if faster else "plain")
            for key, faster in sorted(_table().items(), key=lambda kv: str(kv[0]))}


def set_timed_choices(choices: dict) -> None:
    """Fix the choices in ``choices`` (as ``timed_choices`` returns them): shapes named there are
    never timed again in this process; other shapes are timed when first met."""
    table = _table()
    for key, value in dict(choices).items():
        parts = str(key).split(",")
        if len(parts) != 4 or value not in ("transposed", "plain"):
            raise ValueError(f"timed choice {key!r}: {value!r} is not of the form 'B,K,N,dtype': "
                             f"'transposed' | 'plain'")
        B, K, N, dtype = int(parts[0]), int(parts[1]), int(parts[2]), parts[3]
        table[(B, K, N, dtype)] = value == "transposed"
