"""The data-parallel part of the training loop (``mpiexec -n N``), for every task alike.

The ``Trainer`` (train/loop.py) calls these when ``dist.world()`` has more than one rank;
without mpiexec none of them runs. One step on rank r of N::

    shard = task.shard_batch(batch)          # rows_of(B, r, N) of every per-example array
    loss_r, n_r = task.train_step(shard)     # this rank's mean loss over its n_r items
    g <- sum_r n_r g_r / sum_r n_r           # dist.allreduce_mean_: one Allreduce, the
                                             # single-process gradient of the mean over B

then clipping and the optimizer step, identical on every rank. What a task must do: return
from ``train_step`` the count its loss is averaged over, and have batches that
``dist.shard_batch`` can cut (arrays with examples on axis 0, in tuples / dicts /
dataclasses), or override ``Task.shard_batch``. A task with state carried across batches
gathers it in ``state_dict`` (``dist.allgather_rows``) and re-shards it in
``load_state_dict`` (``dist.shard``), as the LM does. Validation may stay whole on every rank
(right, not faster) or be split (``dist.shard_batch`` + ``dist.allreduce_sum`` /
``dist.allgather_list``).

**Dropout.** Each rank must draw its own masks (the same masks on every rank would drop the
same units of different examples: a well-defined but different model). Rank 0 keeps the
generators a single process has; the generators of rank r > 0 are reseeded from
``dist.rank_seed(layer seed, r, step)``. So a data-parallel run with dropout is reproducible
for a given N but not equal to one process's run; without dropout it is (to rounding).
"""
from __future__ import annotations

from .. import backend
from .. import distributed as dist


def train_shard(task, batch, size: int) -> tuple[float, int]:
    """``task.train_step`` on this rank's rows of ``batch``; a rank left without rows (a batch
    smaller than ``size``) adds a zero gradient and a zero count to the all-reduce."""
    model = task.model
    shard = task.shard_batch(batch)
    if dist.batch_rows(shard) != 0:
        return task.train_step(shard)
    if not model.params:  # a model that builds on its first forward: build it, as the others do
        task.train_step(batch)
    for g in model.grads:
        g[...] = 0
    return 0.0, 0


def start_ranks(model, layers, rank: int, step: int, generators_restored: bool) -> None:
    """Before the first step: every rank takes rank 0's weights (a model that builds lazily is
    built from the same seed on every rank and has none yet), and the dropout generators among
    ``layers`` of a rank > 0 are reseeded from (layer seed, rank, ``step``), unless each rank's
    own generators were restored from a checkpoint of a run with the same N."""
    if model.params:
        dist.broadcast_(model.params)
    if generators_restored or rank == 0:
        return
    for layer in layers:
        if hasattr(layer, "_generator"):
            layer._gen = backend.xp.random.default_rng(dist.rank_seed(getattr(layer, "seed", None), rank, step))
