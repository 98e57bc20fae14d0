"""What a task supplies to the one training loop (``loop.Trainer``), and what the loop gives back.

A task is a config dataclass (``config.TaskConfig``) plus a ``Task`` subclass: its batches, the
loss and backward of one batch, its validation metrics. ``Callback`` hooks into a fit (Keras
style); ``TrainResult`` is what a fit returns; ``TrainingDiverged`` is how a run stops when the
loss is not finite or explodes (the last good checkpoint is kept).
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import distributed as dist
from .run import RunDir

if TYPE_CHECKING:  # for the annotations only: the loop imports this module
    from .loop import Trainer


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite, or exploded; the last good checkpoint was left untouched."""


EXPLOSION_FACTOR = 10.0  # a loss this many times the run's first one (at least 1) has exploded


def check_exploding_loss(loss: float, first: float | None, where: str) -> None:
    """Raise ``TrainingDiverged`` when a finite ``loss`` has exploded: above ``EXPLOSION_FACTOR``
    times ``max(first, 1)``, ``first`` being the run's first training loss (an untrained model's,
    about log(vocabulary) for a classifier over tokens). Training only lowers a loss; one that
    grows tenfold past its untrained value is gradient ascent (a far too large learning rate)."""
    if first is None:
        return
    limit = EXPLOSION_FACTOR * max(float(first), 1.0)
    if float(loss) > limit:
        raise TrainingDiverged(
            f"training diverged: loss {float(loss):.4g} at {where} exploded past {limit:.4g} ({EXPLOSION_FACTOR:g} x "
            f"the first loss {float(first):.4g}); stopped, keeping the last good checkpoint (lower the learning "
            f"rate or clip the gradient norm, and run again)")


def check_finite_loss(loss: float, where: str) -> None:
    """Raise ``TrainingDiverged`` when ``loss`` is NaN or inf (``where``: e.g. "epoch 3, step 120")."""
    if not math.isfinite(float(loss)):
        raise TrainingDiverged(
            f"training diverged: loss is {float(loss)} at {where}; stopped, keeping the last good "
            f"checkpoint (lower the learning rate or the clipping norm and run again, or resume "
            f"from last.npz)")


def log(msg: str) -> None:
    """One line of progress or notice on stderr (stdout stays for results), shown at once."""
    print(msg, file=sys.stderr, flush=True)


# ---- what a task supplies ---------------------------------------------------------------------


class Task:
    """One kind of training. A subclass sets ``name`` and implements the methods marked
    *required*; the others have defaults that fit a task without carried state.

    After ``setup()`` the task holds ``model`` (a ``Model``: params, grads, train()/eval()),
    ``optimizer`` and ``schedule`` (an object with ``lr_at(epoch)``, ``epoch_end(epoch, row)``,
    ``state_dict()``/``load_state_dict()``, or None). ``config`` is its ``TaskConfig``.
    """

    name = "task"               # config.json "task"
    unit = "batch"              # what one step is called in messages and progress bars
    monitor = "valid_loss"      # the validation metric for best.npz and early stopping
    mode = "min"                # "min": lower is better; "max": higher is better

    config = None
    model = None
    optimizer = None
    schedule = None

    def setup(self) -> None:
        """*Required.* Read the data, build the model, the optimizer (and schedule). Seeded by the
        config, so every process builds the same. Called before the run folder gets a config."""
        raise NotImplementedError

    def epoch_batches(self, epoch: int):
        """*Required.* The batches of ``epoch`` (1-based) as a sequence (``len``, ``[i]``); the same
        for the same epoch in any process (shuffle with a generator seeded by seed and epoch)."""
        raise NotImplementedError

    def train_step(self, batch) -> tuple[float, int]:
        """*Required.* Forward, loss and backward on ``batch``, leaving the gradients in
        ``model.grads``. Returns (mean loss, number of items it averages over): data-parallel
        training weights each rank's gradient by that count, so it must be the loss's divisor."""
        raise NotImplementedError

    def shard_batch(self, batch):
        """This process's rows of a global ``batch`` in a data-parallel run (``dist.shard_batch``:
        arrays on axis 0, tuples / dicts / dataclasses of them); override for another layout."""
        return dist.shard_batch(batch)

    def validate(self) -> dict:
        """*Required.* Validation metrics as metrics.jsonl entries (``valid_loss``, ...; must hold
        ``monitor``). The trainer has switched the model to eval mode; a task with carried state
        leaves its training state as it found it."""
        raise NotImplementedError

    def start_epoch(self, epoch: int, batch: int) -> None:
        """Called before the epoch's first step (``batch`` > 0 when resuming mid-epoch)."""

    def train_metrics(self, mean_loss: float, count: int, seconds: float) -> dict:
        """Extra entries of the epoch's row from its training loss (e.g. ``train_ppl``): ``count``
        items averaged so far in the epoch, ``seconds`` of training in it (across resumes)."""
        return {}

    def final_metrics(self, history: list[dict]) -> dict:
        """Figures of the final model (the best one) once training ends, e.g. on the test split."""
        return {}

    def state_dict(self) -> dict:
        """The task's own state for an exact mid-epoch resume (e.g. a carried hidden state);
        JSON values and arrays."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def run_config(self) -> dict:
        """Entries config.json holds besides the config (vocabularies, sizes ...)."""
        return {}

    def write_files(self, run: RunDir) -> None:
        """Files a new run writes once it really starts (e.g. vocab.json)."""

    def check_resume(self, run: RunDir) -> None:
        """Raise when a resumed run's data no longer matches what the run was trained on."""

    def describe_epoch(self, row: dict) -> str:
        return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                         for k, v in row.items() if k != "epoch")

    def postfix(self, mean_loss: float) -> str:
        return f"loss {mean_loss:.4f}"

    def curve_keys(self) -> tuple:
        return ("train_loss", "valid_loss")


class Callback:
    """Hooks into a fit (Keras style). Set ``trainer.stop_training = True`` to stop after the
    current step (``on_batch_end``) or epoch (``on_epoch_end``); a stop by a callback is not
    resumable as a time-budget stop is (the run's last.npz holds the position, though)."""

    def on_train_begin(self, trainer: "Trainer") -> None: ...

    def on_epoch_begin(self, trainer: "Trainer", epoch: int) -> None: ...

    def on_batch_end(self, trainer: "Trainer", epoch: int, batch: int, loss: float) -> None: ...

    def on_epoch_end(self, trainer: "Trainer", epoch: int, row: dict) -> None: ...

    def on_train_end(self, trainer: "Trainer", result: "TrainResult") -> None: ...


@dataclass
class TrainResult:
    """What a fit returns. ``metrics``: the final figures (``task.final_metrics``) plus ``epochs``,
    ``wall_s`` (and ``run_dir``); ``history``: the metrics rows; ``stopped``: "epochs",
    "early_stopping", "time_budget" or "callback". ``result["key"]`` reads ``metrics``."""

    metrics: dict
    history: list = field(default_factory=list)
    model: object = None
    run_dir: str | None = None
    stopped: str = "epochs"
    task: object = None

    def __getitem__(self, key):
        return self.metrics[key]

    def __contains__(self, key) -> bool:
        return key in self.metrics

    def get(self, key, default=None):
        return self.metrics.get(key, default)
