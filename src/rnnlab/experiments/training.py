"""How the experiments train: an in-memory ``Task`` run by the project's one ``Trainer``.

    task = ExperimentTask(model, loss, optimizer, batches)     # batches: a sequence
    history = train_task(task, clip=1.0, measure_updates=True)

Each batch is ``(x, y)`` or ``(x, y, mask)`` as given (``ExperimentTask.inputs`` maps a batch
descriptor to those arrays: row indices into ``arrays``, or a subclass's own, e.g. truncation's
windows). One step is the Trainer's: logits = model.forward(x), value = loss.forward(logits,
y[, mask]), model.backward(loss.backward()), global-norm clipping, optimizer.step; one epoch
over the batches, no run folder, no validation. ``StepRecorder`` keeps one dict per step:
``loss``, ``grad_norm`` (before clipping: the Trainer's ``last_grad_norm``) and, with
``measure_updates``, ``update_norm`` (the norm of the change of all parameters that step, so
that what clipping bounds can be measured).

Divergence: the Trainer raises ``TrainingDiverged`` on a non-finite loss or gradient norm, or a
loss above 10 x the first (``check_exploding_loss``). ``train_task`` catches it and ends the
history with a row ``diverged: True`` for the step that diverged (its loss, and its gradient
norm when that was what failed, else NaN): an experiment may want to show exactly that.
"""
from __future__ import annotations

import math

from .. import backend
from ..train.loop import Callback, Task, Trainer, TrainingDiverged


class ExperimentTask(Task):
    """One pass over ``batches`` (a sequence) training ``model`` with ``loss`` and ``optimizer``.

    ``arrays``: when given, each batch is an array of row indices and the step trains on
    ``tuple(a[rows] for a in arrays)``; else each batch is the ``(x, y[, mask])`` tuple itself.
    The epoch's figure is its mean training loss (``monitor = "train_loss"``)."""

    name = "experiment"
    unit = "step"
    monitor = "train_loss"

    def __init__(self, model, loss, optimizer, batches, arrays=None):
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.batches, self.arrays = batches, arrays
        self.last_loss = math.nan  # the latest step's loss, read when the Trainer raises on it

    def setup(self) -> None:  # built by the experiment
        pass

    def epoch_batches(self, epoch: int):
        return self.batches

    def inputs(self, batch) -> tuple:
        """``batch`` -> (x, y[, mask])."""
        if self.arrays is None:
            return batch
        return tuple(a[batch] for a in self.arrays)

    def train_step(self, batch) -> tuple[float, int]:
        x, y, *mask = self.inputs(batch)
        value = float(self.loss.forward(self.model.forward(x), y, *mask))
        self.last_loss = value
        if math.isfinite(value):  # the Trainer stops on a non-finite loss: no backward needed
            self.model.backward(self.loss.backward())
        return value, len(x)

    def validate(self) -> dict:
        return {}


class StepRecorder(Callback):
    """One row per step: ``loss``, ``grad_norm`` (before clipping) and, with ``measure_updates``,
    ``update_norm`` = sqrt(sum over parameters of sum((p_after - p_before)^2))."""

    def __init__(self, measure_updates: bool = False):
        self.measure_updates = measure_updates
        self.rows: list[dict] = []
        self._before = None

    def _snapshot(self, trainer) -> None:
        if self.measure_updates:
            self._before = [p.copy() for p in trainer.task.model.params]

    def on_train_begin(self, trainer) -> None:
        self._snapshot(trainer)

    def on_batch_end(self, trainer, epoch: int, batch: int, loss: float) -> None:
        row = {"loss": loss, "grad_norm": trainer.last_grad_norm}
        if self.measure_updates:
            xp = backend.xp
            row["update_norm"] = math.sqrt(sum(float(xp.sum((p - b) ** 2))
                                               for p, b in zip(trainer.task.model.params, self._before)))
            self._snapshot(trainer)
        self.rows.append(row)


def train_task(task: ExperimentTask, clip: float | None = None, measure_updates: bool = False) -> list[dict]:
    """Run ``task`` for one epoch with ``Trainer`` (in memory, silent) and return its step rows;
    a diverged run's last row has ``diverged: True``. The model is left in eval mode."""
    recorder = StepRecorder(measure_updates)
    trainer = Trainer(task, epochs=1, clip=clip, progress=False, log=False, restore_best=False,
                      callbacks=[recorder])
    try:
        trainer.fit()
    except TrainingDiverged:
        history = recorder.rows
        if len(history) < len(task.epoch_batches(1)):  # a step failed: its row, marked
            norm = getattr(trainer, "last_grad_norm", math.nan)
            # a finite norm is an earlier, good step's: this step failed on its loss before clipping
            history.append({"loss": task.last_loss, "grad_norm": norm if not math.isfinite(norm) else math.nan,
                            "update_norm": math.nan, "diverged": True})
        elif history:  # every step ran; the weights went bad at the end
            history[-1]["diverged"] = True
    finally:
        task.model.eval()
    return recorder.rows


def train(model, batches, loss, optimizer, clip: float | None = None, measure_updates: bool = False,
          arrays=None) -> list[dict]:
    """``train_task(ExperimentTask(model, loss, optimizer, batches, arrays), clip, measure_updates)``."""
    return train_task(ExperimentTask(model, loss, optimizer, batches, arrays), clip, measure_updates)
