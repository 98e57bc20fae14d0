"""Keras-style training on arrays: ``compile``, ``fit``, ``evaluate``, ``predict`` for any ``Model``.

    model = rl.Sequential([L.Input((20, 6)), L.SimpleRNN(16, return_sequences=True),
                           L.SimpleRNN(32), L.Flatten(), L.Dense(1)])
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    history = model.fit(x, y, epochs=10, batch_size=32, validation_split=0.2)
    history.history["loss"], history.history["val_loss"], history.history["val_mae"]
    model.evaluate(x_test, y_test)          # loss, or [loss, mae, ...] with metrics
    model.predict(x_new, batch_size=32)     # batched, in eval mode

``fit`` runs on the project's one training loop: it wraps the arrays in an ``ArrayTask`` and
calls ``Trainer(task).fit()`` in memory (no run folder), so the NaN guard, gradient clipping,
progress bar (tqdm on stderr where it is a terminal, else a line per epoch; ``verbose=0``
silences it) and ``Callback`` hooks are the loop's. The ``Model`` methods of models/base.py
call the four functions below, which this module registers there when imported
(``models.base.register_keras_training``: models/ does not import train/).

Keras's conventions kept: ``validation_split`` holds out the *last* fraction of the arrays,
taken before shuffling; shuffling is per epoch (seeded by ``seed`` and the epoch); the epoch's
``loss`` and training metrics are running means over its batches, weighted by batch size,
with the model in training mode (dropout on); validation runs in eval mode; history keys are
``loss``, the metric names as given (``accuracy``, ``mae`` ...) and ``val_`` + each. Not
Keras: ``clipnorm`` clips the *global* gradient norm (Keras's ``global_clipnorm``), and the
weights are not restored to the best epoch unless ``EarlyStopping(restore_best_weights=True)``
says so (as in Keras). How probability outputs (sigmoid, softmax) meet the cross-entropies is
in train/keras_losses.py: the final activation is fused into the loss.

Inputs: float arrays (B, T, D) (cast to the model's float type), or integer ids (B, T) for a
model that starts with an Embedding. A Sequential carries an ``Embedding(mask_zero=True)``
mask through its layers as usual; when the outputs keep the (B, T) axes of such ids (a tagger),
the loss and metrics count only the unpadded positions.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from .. import backend, optim
from ..layers.core import Embedding
from ..models.base import Sequential, eval_mode, register_keras_training
from .keras_losses import LOSS_NAMES, resolve_loss, resolve_metrics, to_probabilities
from .loop import Task, Trainer

OPTIMIZER_NAMES = {"adam": optim.Adam, "adamw": optim.AdamW, "sgd": optim.SGD}
# the defaults Keras gives each named optimizer (Keras's SGD: lr 0.01, PyTorch-style update)
OPTIMIZER_DEFAULTS = {"adam": {"lr": 1e-3}, "adamw": {"lr": 1e-3, "weight_decay": 4e-3}, "sgd": {"lr": 0.01}}


class Compiled:
    """What ``compile`` fixed: the optimizer, the loss (name, object, fused layer) and metrics."""

    def __init__(self, optimizer, loss_key, loss, fused, metrics):
        self.optimizer, self.loss_key, self.loss, self.fused, self.metrics = optimizer, loss_key, loss, fused, metrics

    @property
    def fused_activation(self):
        return self.fused.activation if self.fused is not None else None


class History:
    """What ``fit`` returns, as Keras's: ``history`` (key -> one value per epoch), ``epoch``
    (0-based epoch numbers), ``params``, ``model``; ``stopped`` says why training ended."""

    def __init__(self, model, rows: list, params: dict, stopped: str):
        self.model, self.params, self.stopped = model, params, stopped
        self.epoch = [row["epoch"] - 1 for row in rows]
        self.history: dict[str, list] = {}
        for row in rows:
            for key, value in keras_logs(row).items():
                self.history.setdefault(key, []).append(value)

    def __repr__(self) -> str:
        return f"History(epochs={len(self.epoch)}, keys={list(self.history)})"


def keras_logs(row: dict) -> dict:
    """A metrics row of the loop as Keras's logs: ``train_loss`` -> ``loss``, ``valid_loss`` ->
    ``val_loss``, metrics as they are; the loop's bookkeeping (epoch, lr, step ...) left out."""
    logs = {}
    for key, value in row.items():
        if key in ("epoch", "lr", "step", "wall_s", "partial"):
            continue
        logs[{"train_loss": "loss", "valid_loss": "val_loss"}.get(key, key)] = value
    return logs


# ---- compile ----------------------------------------------------------------------------------


def compile_model(model, optimizer="adam", loss=None, metrics=None) -> None:
    """Fix the optimizer, loss and metrics of ``model`` for fit/evaluate (see the module doc)."""
    if isinstance(optimizer, str):
        key = optimizer.lower()
        if key not in OPTIMIZER_NAMES:
            raise ValueError(f"compile(optimizer={optimizer!r}): unknown optimizer; rnnlab has "
                             f"{', '.join(sorted(OPTIMIZER_NAMES))}, or pass an optimizer object "
                             f"(rnnlab.optim.Adam(lr=...))")
        opt = OPTIMIZER_NAMES[key](**OPTIMIZER_DEFAULTS[key])
    elif isinstance(optimizer, optim.Optimizer):
        opt = optimizer
    else:
        raise TypeError(f"compile(optimizer=...): expected a name ({', '.join(sorted(OPTIMIZER_NAMES))}) or an "
                        f"rnnlab.optim.Optimizer, got {type(optimizer).__name__}")
    if loss is None:
        raise ValueError("compile(loss=None): give a loss, e.g. loss='mse' or loss='sparse_categorical_crossentropy'")
    loss_key, loss_obj, fused = resolve_loss(loss, model)
    model._compiled = Compiled(opt, loss_key, loss_obj, fused, resolve_metrics(metrics, loss_key))


def _compiled(model, what: str) -> Compiled:
    compiled = getattr(model, "_compiled", None)
    if compiled is None:
        raise RuntimeError(f"{model.describe()}: call model.compile(optimizer=..., loss=...) before model.{what}()")
    return compiled


@contextlib.contextmanager
def fused_activation(compiled: Compiled):
    """While inside, the fused layer outputs logits (its activation switched to linear)."""
    layer = compiled.fused
    if layer is None:
        yield
        return
    saved, layer.activation = layer.activation, "linear"
    try:
        yield
    finally:
        layer.activation = saved


# ---- arrays -----------------------------------------------------------------------------------


def _as_input(x, what: str = "x"):
    """x as a backend array: floats in the model's float type, integer ids as int64."""
    a = np.asarray(backend.to_numpy(x) if not isinstance(x, np.ndarray) else x)
    if a.dtype.kind in "iub":
        return backend.xp.asarray(a.astype(np.int64, copy=False))
    if a.dtype.kind != "f":
        raise TypeError(f"{what}: expected a float or integer array, got dtype {a.dtype}")
    return backend.asarray(a)


def _check_pair(x, y, what: str):
    if y is None:
        raise ValueError(f"{what}: y is None; give the targets")
    if len(x) != len(y):
        raise ValueError(f"{what}: x has {len(x)} samples but y has {len(y)}")
    if len(x) == 0:
        raise ValueError(f"{what}: no samples")


class _Batches:
    """Batches (x, y) of rows ``order`` in slices of ``size``: ``len`` and ``[i]`` for the loop."""

    def __init__(self, x, y, order, size: int):
        self.x, self.y, self.order, self.size = x, y, order, size

    def __len__(self) -> int:
        return math.ceil(len(self.order) / self.size)

    def __getitem__(self, i):
        rows = self.order[i * self.size:(i + 1) * self.size]
        x_rows = rows if backend.backend_name() == "numpy" else backend.xp.asarray(rows)  # x may sit on a GPU
        return self.x[x_rows], (self.y[rows] if self.y is not None else None)


# ---- the task ---------------------------------------------------------------------------------


class ArrayTask(Task):
    """Training on arrays (x, y) with the compiled loss and metrics, driven by ``Trainer``.

    ``x``, ``y``: the training arrays; ``validation``: (x_val, y_val) or None; ``batch_size``;
    ``shuffle`` (per epoch, seeded by ``seed`` and the epoch). ``validate()`` gives
    ``valid_loss`` and ``val_<metric>``; ``train_metrics`` the epoch's running means of the
    metrics. The model must be compiled (``compile_model``)."""

    name = "fit"
    unit = "batch"

    def __init__(self, model, x, y, validation=None, batch_size: int = 32, shuffle: bool = True, seed: int = 0):
        self.model = model
        self.compiled = _compiled(model, "fit")
        self.optimizer = self.compiled.optimizer
        self.x, self.y = _as_input(x), np.asarray(backend.to_numpy(y))
        self.validation = None
        if validation is not None:
            self.validation = (_as_input(validation[0], "validation x"), np.asarray(backend.to_numpy(validation[1])))
        self.batch_size, self.shuffle, self.seed = int(batch_size), bool(shuffle), int(seed)
        self.monitor = "valid_loss" if validation is not None else "train_loss"
        self._sums: dict[str, list] = {}

    def setup(self) -> None:  # the model and optimizer come built from compile
        pass

    def epoch_batches(self, epoch: int):
        n = len(self.x)
        order = np.arange(n)
        if self.shuffle:
            order = np.random.default_rng((self.seed, epoch)).permutation(n)
        return _Batches(self.x, self.y, order, self.batch_size)

    def start_epoch(self, epoch: int, batch: int) -> None:
        self._sums = {name: [0.0, 0] for name, _ in self.compiled.metrics}

    def train_step(self, batch):
        xb, yb = batch
        model, c = self.model, self.compiled
        model.zero_grads()
        with fused_activation(c):
            out = model.forward(xb)
            loss = self._loss(out, xb, yb)
            self._add_metrics(self._sums, out, xb, yb)
            model.backward(c.loss.backward())
        return loss, len(xb)

    def _targets(self, out, yb):
        """yb on the backend, shaped as the loss wants it (Keras accepts (B,) for (B, 1) outputs,
        (B, 1) class ids for (B, K) outputs)."""
        c = self.compiled
        if c.loss_key == "sparse_categorical_crossentropy":
            y = yb.reshape(out.shape[:-1]) if yb.size == int(np.prod(out.shape[:-1])) else yb
            return backend.xp.asarray(y.astype(np.int64))
        if c.loss_key not in LOSS_NAMES.values() and yb.dtype.kind in "iub":
            return backend.xp.asarray(yb.astype(np.int64))     # a loss object with class ids
        y = backend.asarray(yb.astype(np.float64, copy=False), dtype=out.dtype)
        if c.loss_key != "categorical_crossentropy" and y.shape != out.shape and y.size == out.size:
            y = y.reshape(out.shape)
        return y

    def _mask(self, xb, out):
        """The (B, T) mask of padded ids when the outputs keep the ids' time axis, else None."""
        layers = self.model.layers if isinstance(self.model, Sequential) else None
        first = layers[0] if layers else None
        if isinstance(first, Embedding) and first.mask_zero and out.ndim >= 3 and \
                tuple(out.shape[:2]) == tuple(xb.shape[:2]):
            return xb != 0
        return None

    def _loss(self, out, xb, yb) -> float:
        return self.compiled.loss.forward(out, self._targets(out, yb), self._mask(xb, out))

    def _add_metrics(self, sums: dict, out, xb, yb) -> None:
        if not self.compiled.metrics:
            return
        probs = to_probabilities(out, self.compiled.fused_activation)
        y = yb if self.compiled.loss_key == "sparse_categorical_crossentropy" else None
        targets = backend.xp.asarray(y) if y is not None else self._targets(out, yb)
        mask = self._mask(xb, out)
        for name, fn in self.compiled.metrics:
            total, count = fn(probs, targets, mask)
            sums[name][0] += total
            sums[name][1] += count

    def train_metrics(self, mean_loss: float, count: int, seconds: float) -> dict:
        return {name: s / max(n, 1) for name, (s, n) in self._sums.items()}

    def evaluate_arrays(self, x, y) -> dict:
        """Loss and metrics over (x, y) in batches, the model as it is (eval mode when called
        from validate): {"loss": ..., metric: ...}, each weighted by batch size."""
        c = self.compiled
        sums = {name: [0.0, 0] for name, _ in c.metrics}
        total, n = 0.0, 0
        batches = _Batches(x, y, np.arange(len(x)), self.batch_size)
        with fused_activation(c):
            for i in range(len(batches)):
                xb, yb = batches[i]
                out = self.model.forward(xb)
                total += self._loss(out, xb, yb) * len(xb)
                n += len(xb)
                self._add_metrics(sums, out, xb, yb)
        return {"loss": total / n, **{name: s / max(k, 1) for name, (s, k) in sums.items()}}

    def validate(self) -> dict:
        if self.validation is None:
            return {}
        logs = self.evaluate_arrays(*self.validation)
        return {"valid_loss": logs.pop("loss"), **{f"val_{k}": v for k, v in logs.items()}}

    def describe_epoch(self, row: dict) -> str:
        return " - ".join(f"{k}: {v:.4f}" for k, v in keras_logs(row).items())

    def curve_keys(self) -> tuple:
        return ("train_loss", "valid_loss")


# ---- fit, evaluate, predict -------------------------------------------------------------------


def fit_model(model, x=None, y=None, batch_size: int | None = None, epochs: int = 1, verbose=1,
              callbacks=None, validation_split: float = 0.0, validation_data=None, shuffle: bool = True,
              clipnorm: float | None = None, seed: int = 0) -> History:
    """Keras's ``fit`` on the one loop; returns a ``History`` (see the module doc)."""
    _compiled(model, "fit")
    if x is None:
        raise ValueError("fit: x is None; give the training inputs")
    _check_pair(x, y, "fit")
    batch_size = 32 if batch_size is None else int(batch_size)
    if batch_size < 1:
        raise ValueError(f"fit(batch_size={batch_size}): must be at least 1")
    if int(epochs) < 0:
        raise ValueError(f"fit(epochs={epochs}): must be >= 0")
    if not 0.0 <= float(validation_split) < 1.0:
        raise ValueError(f"fit(validation_split={validation_split}): must lie in [0, 1)")
    if validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError("fit(validation_data=...): expected a pair (x_val, y_val)")
        _check_pair(validation_data[0], validation_data[1], "fit(validation_data=...)")
    elif validation_split:
        # Keras: the last fraction of the samples, before any shuffling
        split_at = int(math.floor(len(x) * (1.0 - float(validation_split))))
        if split_at in (0, len(x)):
            raise ValueError(f"fit(validation_split={validation_split}): with {len(x)} samples this leaves "
                             f"{split_at} for training and {len(x) - split_at} for validation")
        validation_data = (x[split_at:], y[split_at:])
        x, y = x[:split_at], y[:split_at]
    if verbose not in (0, 1, 2, "auto"):
        raise ValueError(f"fit(verbose={verbose!r}): expected 0 (silent), 1 (progress bar) or 2 (a line per epoch)")
    verbose = 1 if verbose == "auto" else verbose
    task = ArrayTask(model, x, y, validation_data, batch_size, shuffle, seed)
    trainer = Trainer(task, epochs=int(epochs), clip=clipnorm, monitor=task.monitor, mode="min",
                      # verbose=1: a bar where stderr is a terminal (in a log file, a line per epoch)
                      progress=None if verbose == 1 else False, callbacks=list(callbacks or ()),
                      restore_best=False, log=verbose in (1, 2))
    result = trainer.fit()
    params = {"epochs": int(epochs), "steps": len(task.epoch_batches(1)), "verbose": verbose,
              "batch_size": batch_size}
    history = History(model, result.history, params, result.stopped)
    model.history = history
    return history


def evaluate_model(model, x=None, y=None, batch_size: int | None = None, verbose=0, return_dict: bool = False):
    """Loss (and metrics) over (x, y) in eval mode: a float without metrics, else
    [loss, metric, ...] in compile's order (``return_dict``: {"loss": ..., name: ...})."""
    _compiled(model, "evaluate")
    _check_pair(x, y, "evaluate")
    task = ArrayTask(model, x, y, batch_size=32 if batch_size is None else batch_size, shuffle=False)
    with eval_mode(model):
        logs = task.evaluate_arrays(task.x, task.y)
    if return_dict:
        return logs
    values = list(logs.values())
    return values[0] if len(values) == 1 else values


def predict_model(model, x, batch_size: int | None = None, verbose=0):
    """The model's outputs for ``x`` in batches of ``batch_size`` (32), in eval mode, as one
    NumPy array (what the model returns: probabilities after a sigmoid or softmax)."""
    if x is None or len(x) == 0:
        raise ValueError("predict: x is empty")
    batch_size = 32 if batch_size is None else int(batch_size)
    if batch_size < 1:
        raise ValueError(f"predict(batch_size={batch_size}): must be at least 1")
    xs = _as_input(x)
    outs = []
    with eval_mode(model):
        for start in range(0, len(xs), batch_size):
            outs.append(backend.to_numpy(model.forward(xs[start:start + batch_size])))
    return np.concatenate(outs, axis=0)


register_keras_training(compile=compile_model, fit=fit_model, evaluate=evaluate_model, predict=predict_model)
