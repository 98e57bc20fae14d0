"""Keras's ``EarlyStopping`` and ``ModelCheckpoint`` as hooks of the one loop (``loop.Callback``).

    from rnnlab.callbacks import EarlyStopping, ModelCheckpoint
    model.fit(x, y, validation_split=0.2, epochs=50, callbacks=[
        EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True),
        ModelCheckpoint("best.npz", monitor="val_loss", save_best_only=True)])

Both read the epoch's metrics under Keras's names (``loss``, ``val_loss``, ``accuracy``,
``val_accuracy`` ...; train/fit.py ``keras_logs``), so they also work with any loop task
whose rows hold ``train_loss``/``valid_loss``. A monitored name the epoch does not have is an
error naming the ones it has (Keras only warns, and then silently never stops or saves).
"""
from __future__ import annotations

import math
import sys

from .fit import keras_logs
from .loop import Callback


def _mode(mode: str, monitor: str) -> str:
    """Keras's "auto": higher is better for accuracies, lower for anything else."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode == "auto":
        return "max" if "acc" in monitor else "min"
    return mode


def _monitored(logs: dict, monitor: str, who: str) -> float:
    if monitor not in logs:
        hint = " (val_ keys need validation_split or validation_data)" if monitor.startswith("val_") else ""
        raise KeyError(f"{who}(monitor={monitor!r}): the epoch has no {monitor!r}{hint}; it has "
                       f"{', '.join(sorted(logs))}")
    return float(logs[monitor])


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved (by more than ``min_delta``) for ``patience``
    epochs; with ``restore_best_weights`` the model ends with the weights of its best epoch
    (Keras 3: restored at the end of training whenever a best epoch was seen).
    ``stopped_epoch`` (1-based; 0 if it never stopped) and ``best_epoch`` tell what happened."""

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", restore_best_weights: bool = False):
        self.monitor, self.patience, self.verbose = monitor, int(patience), verbose
        self.mode = _mode(mode, monitor)
        self.min_delta = abs(float(min_delta))
        self.restore_best_weights = restore_best_weights

    def _better(self, value: float, best: float) -> bool:
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta

    def on_train_begin(self, trainer) -> None:
        self.wait, self.stopped_epoch, self.best_epoch = 0, 0, 0
        self.best = math.inf if self.mode == "min" else -math.inf
        self.best_weights = None

    def on_epoch_end(self, trainer, epoch: int, row: dict) -> None:
        value = _monitored(keras_logs(row), self.monitor, "EarlyStopping")
        model = trainer.task.model
        self.wait += 1
        if self._better(value, self.best):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self.best_weights = model.get_weights()
            return
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            trainer.stop_training = True
            if self.verbose:
                print(f"Epoch {epoch}: early stopping ({self.monitor} best {self.best:.4g} at epoch "
                      f"{self.best_epoch})", file=sys.stderr)

    def on_train_end(self, trainer, result) -> None:
        if self.restore_best_weights and self.best_weights is not None:
            trainer.task.model.set_weights(self.best_weights)
            if self.verbose:
                print(f"restoring the weights of epoch {self.best_epoch}", file=sys.stderr)


class ModelCheckpoint(Callback):
    """Save the model after every epoch to ``filepath`` (atomically, ``rnnlab.checkpoint``; load
    it back with ``rnnlab.load``), or with ``save_best_only`` only when ``monitor`` improved.
    ``filepath`` may name the epoch and logs as Keras's does: ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``
    (epoch counted from 1). The file is rnnlab's checkpoint (weights and config), not a ``.keras``."""

    def __init__(self, filepath, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 mode: str = "auto"):
        self.filepath, self.monitor, self.verbose = str(filepath), monitor, verbose
        self.save_best_only = save_best_only
        self.mode = _mode(mode, monitor)
        self.best = math.inf if self.mode == "min" else -math.inf
        self.saved: list[str] = []

    def on_epoch_end(self, trainer, epoch: int, row: dict) -> None:
        from ..checkpoint import save_checkpoint

        logs = keras_logs(row)
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            better = value < self.best if self.mode == "min" else value > self.best
            if not better:
                return
            self.best = value
        try:
            path = self.filepath.format(epoch=epoch, **logs)
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"ModelCheckpoint({self.filepath!r}): cannot fill the name from epoch and "
                             f"{', '.join(sorted(logs))}: {err}") from err
        save_checkpoint(path, trainer.task.model, state={"epoch": epoch, **logs})
        self.saved.append(path)
        if self.verbose:
            print(f"Epoch {epoch}: saved the model to {path}", file=sys.stderr)


__all__ = ["Callback", "EarlyStopping", "ModelCheckpoint"]
