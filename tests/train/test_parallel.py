"""train/parallel.py, the data-parallel steps of the loop, in one process: its end-to-end runs under
mpiexec are in the slow tier (tests/test_distributed.py, tests/test_distributed_cli.py)."""
import numpy as np

from rnnlab import distributed as dist
from rnnlab.layers import Dense, Dropout
from rnnlab.train import parallel


class RowsTask:
    """The part of a Task that ``train_shard`` uses: this rank keeps the first ``rows`` rows."""

    def __init__(self, model, rows):
        self.model, self.rows, self.steps = model, rows, []

    def shard_batch(self, batch):
        return batch[:self.rows]

    def train_step(self, batch):
        self.steps.append(len(batch))
        y = self.model.forward(batch)
        self.model.backward(np.ones_like(y))
        return float(y.sum()), len(batch)


def test_a_rank_with_rows_trains_on_its_shard():
    task = RowsTask(Dense(3, seed=0), rows=2)
    loss, count = parallel.train_shard(task, np.ones((4, 5), dtype="float32"), size=2)
    assert count == 2 and task.steps == [2] and np.isfinite(loss)
    assert any(np.abs(g).sum() > 0 for g in task.model.grads)


def test_a_rank_without_rows_adds_zeros_and_builds_a_lazy_model_first():
    batch = np.ones((1, 5), dtype="float32")
    lazy = RowsTask(Dense(3, seed=0), rows=0)            # no weights until its first forward
    assert parallel.train_shard(lazy, batch, size=2) == (0.0, 0)
    assert lazy.steps == [1] and lazy.model.params        # built on the whole batch ...
    assert all(not g.any() for g in lazy.model.grads)     # ... but it adds nothing to the all-reduce
    assert parallel.train_shard(lazy, batch, size=2) == (0.0, 0) and lazy.steps == [1]


def test_ranks_past_the_first_draw_their_own_dropout_masks():
    def start(rank, restored=False):
        model, drop = Dense(3, seed=0), Dropout(0.5, seed=7)
        model.forward(np.ones((1, 5), dtype="float32"))
        parallel.start_ranks(model, [drop], rank=rank, step=11, generators_restored=restored)
        return drop._generator().random(4)

    own = np.random.default_rng(7).random(4)
    np.testing.assert_array_equal(start(0), own)                  # rank 0: a single process's masks
    np.testing.assert_array_equal(start(1, restored=True), own)   # restored from a checkpoint: kept
    reseeded = np.random.default_rng(dist.rank_seed(7, 1, 11)).random(4)
    np.testing.assert_array_equal(start(1), reseeded)
    assert not np.array_equal(start(1), start(2))
