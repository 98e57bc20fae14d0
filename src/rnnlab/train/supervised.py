"""What the classify, tag and caption tasks share: padded-batch training with a masked softmax
cross-entropy, evaluation over a split, starting / resuming a run, and loading a finished run.

A task here is a ``SupervisedTask``: its data holds splits with
``split.batches(batch_size, shuffle, seed, epoch)`` (``data/labeled.py``, ``conllu.py``,
``captions.py``); the subclass says how to read its data (``load_data``), how to build its
model (``build_model``), and how a batch feeds the model (``inputs(batch)`` -> the positional
arguments of ``model.forward``; ``targets(batch)`` -> (target ids, mask or None)). One step::

    logits = model.forward(*task.inputs(batch))              # (B, C) or (B, T, V)
    loss = mean over counted positions of -log softmax(logits)[target]
    model.backward(dL/dlogits)

Each epoch's batches are length-bucketed and shuffled by (seed, epoch), so a resumed epoch sees
the same batches. ``run_task`` opens the run folder (or resumes it with the overrides a resume
may change) and fits on ``train/loop.py``'s ``Trainer``; ``load_run`` gives a finished run's
config.json and best model for prediction.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import backend, initializers
from ..checkpoint import load_checkpoint
from ..data.memory import check_memory
from ..layers.core import softmax
from ..losses import SoftmaxCrossEntropy
from ..models.base import eval_mode
from ..optim import StepDecay, get as get_optimizer
from .config import DATA, TrainingConfig, checkpoint_source, setting
from .loop import Callback, RunDir, Task, TrainResult, train_from_config
from .task import log

@dataclass
class SupervisedConfig(TrainingConfig):
    """The settings every supervised task has (its data and model fields come in the subclass)."""

    monitor: str | None = setting(None, "validation metric that picks best.npz and drives --patience (valid_loss: "
                                  "lowered; any other: raised; default: the task's accuracy)", choices="MONITORS")

    MONITORS = ()                      # the metrics validate() returns: what `monitor` may name
    SECTION_TITLES = {DATA: "data (one source)"}
    PATH_FIELDS = ()                   # data paths stored absolute in config.json
    DATA_FIELDS = ()                   # the fields that choose the data: runs to ensemble agree on them
    EARLIER_RUNS = {"lr_decay": 1.0, "decay_start": 1}   # runs from before the decay had a constant rate


EVAL_BATCH = 256                       # examples per batch when evaluating


class SupervisedTask(Task):
    """A padded-batch task with a masked softmax cross-entropy (see the module docstring)."""

    unit = "batch"
    monitor = "valid_accuracy"
    mode = "max"
    memory_hint = "lower --batch or --max-len"   # what the task's flags can do about a batch too large

    def __init__(self, config: SupervisedConfig, data=None):
        self.config = config
        self.data = data              # in memory (tests); else load_data() reads what config names
        if config.monitor:            # a loss is minimized, anything else (accuracy ...) maximized
            self.monitor, self.mode = config.monitor, "min" if config.monitor.endswith("loss") else "max"
        self.loss_fn = SoftmaxCrossEntropy()

    # -- what a subclass supplies ----------------------------------------------------------------
    def load_data(self):
        raise NotImplementedError

    def build_model(self):
        raise NotImplementedError

    def inputs(self, batch) -> tuple:
        raise NotImplementedError

    def targets(self, batch) -> tuple:
        raise NotImplementedError

    def padded_batch_bytes(self, rows: int) -> tuple[int, str]:
        """(estimate in bytes, description) of a batch of ``rows`` of the longest examples
        (``data/memory.py``), for the memory check of ``setup``."""
        raise NotImplementedError

    # -- the loop's interface --------------------------------------------------------------------
    def setup(self) -> None:
        initializers.seed(self.config.seed)
        if self.data is None:
            self.data = self.load_data()
        for note in getattr(self.data, "notes", None) or ():
            log(f"rnnlab train {self.name}: {note}")
        self.model = self.build_model()
        self.check_batch_memory()
        self.optimizer = get_optimizer(self.config.optimizer, lr=self.config.lr)
        if self.config.lr_decay != 1.0:
            self.schedule = StepDecay(self.optimizer, self.config.lr_decay, self.config.decay_start)

    def check_batch_memory(self, available: int | None = None) -> int:
        """MemoryError (naming the batch and what to lower) before anything trains when the
        largest padded batch, training's or evaluation's, would not fit; returns the estimate."""
        splits = [s for s in (self.data.train, self.data.valid, self.data.test) if s is not None]
        rows = min(max(self.config.batch, EVAL_BATCH), max(len(s) for s in splits))
        need, what = self.padded_batch_bytes(rows)
        return check_memory(need, f"the largest padded batch ({what})", self.memory_hint, available)

    def epoch_batches(self, epoch: int):
        return list(self.data.train.batches(self.config.batch, shuffle=True, seed=self.config.seed, epoch=epoch))

    def train_step(self, batch) -> tuple[float, int]:
        logits = self.model.forward(*self.inputs(batch))
        targets, mask = self.targets(batch)
        loss = self.loss_fn.forward(logits, targets, mask)
        self.model.backward(self.loss_fn.backward())
        return float(loss), int(self.loss_fn.count)

    def curve_keys(self) -> tuple:
        return ("train_loss", "valid_loss", "valid_accuracy")

    def describe_epoch(self, row: dict) -> str:
        return ", ".join(f"{k} {v:.4g}" for k, v in row.items()
                         if isinstance(v, float) and k not in ("lr", "wall_s"))

    def test_figures(self) -> dict:
        """The final figures of the model the trainer restored (the best by ``monitor``)."""
        raise NotImplementedError

    def final_metrics(self, history) -> dict:
        """``test_figures``, and which checkpoint they come from: ``checkpoint`` ("best" by
        ``checkpoint_metric``), ``checkpoint_epoch``, as every trainer's results name it."""
        return {**self.test_figures(), **checkpoint_source(history, self.monitor, self.mode)[0]}

    def save_report(self, folder: Path, metrics: dict) -> None:
        """Figures of the final results written into the run folder (e.g. a confusion matrix),
        after results.json; ``save_figure`` turns a failure to draw into a warning."""

    # -- evaluation ------------------------------------------------------------------------------
    def outputs(self, split, batch_size: int = EVAL_BATCH, keep=None) -> tuple[float, list]:
        """(mean loss over the split's counted positions, [(batch, logits on the host)]) in eval
        mode (restored after); batches in length order, no shuffling. ``keep(logits)``: what to
        hold of each batch's logits instead (a classifier's argmax: memory of the examples, not
        of examples x classes)."""
        loss_fn, total, count, out = SoftmaxCrossEntropy(), 0.0, 0, []
        with eval_mode(self.model):
            for batch in split.batches(batch_size):
                logits = self.model.forward(*self.inputs(batch))
                targets, mask = self.targets(batch)
                total += loss_fn.forward(logits, targets, mask) * loss_fn.count
                count += loss_fn.count
                out.append((batch, backend.to_numpy(logits if keep is None else keep(logits))))
        return total / max(count, 1), out


def drop_words(batches: list, key: str, p: float, unk_id: int, seed: int, epoch: int) -> list:
    """Word dropout: each real token (``mask`` True) of every ``batch[key]`` read as ``unk_id``
    with probability ``p``, drawn from a generator seeded by (seed, epoch), so a resumed epoch
    drops the same words. The model learns an ``<unk>`` embedding and to do without any one
    word, as it must for the words a test sentence has and training never had."""
    xp, rng = backend.xp, np.random.default_rng([seed, epoch, 1])
    for batch in batches:
        drop = (rng.random(batch[key].shape) < p) & backend.to_numpy(batch["mask"]).astype(bool)
        batch[key] = xp.where(xp.asarray(drop), unk_id, batch[key])
    return batches


def host_softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis of logits already on the host (``SupervisedTask.outputs``),
    returned on the host."""
    return backend.to_numpy(softmax(backend.xp.asarray(logits)))


def class_predictions(outputs, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per example (in split order) its predicted class and class probabilities, from
    ``SupervisedTask.outputs`` of a classifier ((B, C) logits per batch)."""
    predictions, probs = np.zeros(n, dtype=np.int64), None
    for batch, logits in outputs:
        p = host_softmax(logits)
        if probs is None:
            probs = np.zeros((n, p.shape[1]))
        rows = np.asarray(batch["rows"])
        probs[rows], predictions[rows] = p, p.argmax(axis=1)
    return predictions, probs


def majority_baseline(train_labels, test_labels) -> float:
    """Accuracy of always answering the training split's most frequent label."""
    train_labels, test_labels = np.asarray(train_labels), np.asarray(test_labels)
    values, counts = np.unique(train_labels, return_counts=True)
    return float((test_labels == values[counts.argmax()]).mean()) if test_labels.size else 0.0


class _SaveReport(Callback):
    """Writes the task's report files (confusion matrix, per-tag table, captions) into the run
    folder once the final figures exist."""

    def on_train_end(self, trainer, result) -> None:
        if trainer.writes:
            trainer.task.save_report(Path(trainer.run.path), result.metrics)


def run_task(task_class, config: SupervisedConfig | None, run_dir=None, resume: bool = False,
             overrides: dict | None = None, overwrite: bool = False, data=None, callbacks=(),
             **trainer_options) -> TrainResult:
    """Train ``task_class(config, data)`` on the loop, writing ``run_dir`` when given; with
    ``resume`` the run's stored config is read back (``overrides`` may change epochs, the time
    budget, checkpointing, patience, progress) and training continues from last.npz."""
    config_class = task_class.config_class
    return train_from_config(task_class.name, config_class, lambda c: task_class(c, data=data), config, run_dir,
                             resume=resume, overwrite=overwrite, overrides=overrides,
                             path_keys=config_class.PATH_FIELDS,
                             trainer_options={"callbacks": [*callbacks, _SaveReport()], **trainer_options})


def load_run(run_dir, checkpoint: str = "best") -> tuple[dict, object]:
    """(config.json of ``run_dir``, its best model in eval mode; last.npz when there is no best)."""
    run = RunDir(run_dir, create=False)
    if not run.config_path.exists():
        raise FileNotFoundError(f"{run.path} is not a run directory (no config.json)")
    stored = run.read_config()
    path = run.best_path if checkpoint == "best" and run.best_path.exists() else run.last_path
    if not path.exists():
        raise FileNotFoundError(f"{run.path} holds no checkpoint (best.npz / last.npz): did training finish "
                                f"an epoch?")
    model = load_checkpoint(path).model
    model.eval()
    return stored, model


def damaged(run_dir, key: str, what: str, got) -> ValueError:
    """The error for an entry of a run's config.json that is not what the run wrote."""
    shown = repr(got)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return ValueError(f"{Path(run_dir) / RunDir.CONFIG}: {key!r} must be {what}, got {shown}: the file is damaged "
                      f"or belongs to another run")


def stored_names(stored: dict, key: str, count: int, run_dir) -> list[str]:
    """config.json's list of ``count`` names under ``key`` (a classifier's labels, a tagger's
    tags: one per output of the model), else a ValueError naming the file and the key."""
    names = stored.get(key)
    if not (isinstance(names, list) and len(names) == count and all(isinstance(n, str) for n in names)):
        raise damaged(run_dir, key, f"a list of the model's {count} names", names)
    return names


def stored_vocab(stored: dict, key: str, size: int, run_dir):
    """config.json's vocabulary under ``key``, of the ``size`` tokens the model embeds, else a
    ValueError naming the file and the key."""
    from ..data.vocab import Vocab

    try:
        vocab = Vocab.from_json(stored.get(key))
    except ValueError as err:
        raise damaged(run_dir, key, f"a vocabulary ({err})", stored.get(key)) from None
    if len(vocab) != size:
        raise damaged(run_dir, key, f"a vocabulary of the model's {size} tokens", len(vocab))
    return vocab


def save_figure(plot, *args, **kwargs):
    """A figure of the results, or a warning when matplotlib is missing (the numbers are kept)."""
    from ..plots import plot_or_warn

    return plot_or_warn(plot, *args, **kwargs)
