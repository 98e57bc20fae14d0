"""Optimizers, gradient clipping and learning-rate schedules.

    opt = SGD(lr=1.0)                      # or SGD(lr, momentum=0.9, nesterov=True), Adam(), AdamW()
    opt = Adam(learning_rate=1e-3)         # Keras's name for the rate (rnnlab.optimizers: Keras's module name)
    norm = clip_grad_norm(model.grads, 5.0)
    opt.step(model.params, model.grads)    # updates the parameters in place

The update rules are PyTorch's (``torch.optim.SGD``, ``Adam``, ``AdamW``), so the two agree
step for step (tests/parity). Per-parameter state (momentum, Adam moments) is keyed by the
parameter's position in the list, so always pass the same list in the same order.
``state_dict()`` gives ``(arrays, meta)``: arrays named ``"<slot>/<position>"`` and a
JSON-serialisable meta dict; ``load_state_dict(arrays, meta)`` restores both (checkpoints).

The updates never allocate per step: they work in place on the state and on one scratch
buffer per parameter shape, and keep the parameters' dtype (Python-float hyperparameters do
not upcast float32 arrays).

Schedules change ``opt.lr`` between epochs: ``StepDecay`` (Zaremba et al. 2014) and
``ReduceLROnPlateau``.
"""
from __future__ import annotations

import math

from . import backend, validate


def _rate(owner: str, lr, learning_rate, default: float) -> float:
    """The learning rate from ``lr`` (PyTorch's name) or ``learning_rate`` (Keras's), not both."""
    if lr is not None and learning_rate is not None and float(lr) != float(learning_rate):
        raise TypeError(f"{owner}: give the learning rate once, as lr= or learning_rate=, not both "
                        f"(got lr={lr}, learning_rate={learning_rate})")
    return default if lr is None and learning_rate is None else float(lr if lr is not None else learning_rate)


class Optimizer:
    """Base class: learning rate, per-position state, scratch buffers, (de)serialisation."""

    slots: tuple[str, ...] = ()  # names of the per-parameter state arrays

    def __init__(self, lr: float):
        self.lr = lr
        self.t = 0  # number of steps taken
        self.state: dict[str, dict[int, object]] = {slot: {} for slot in self.slots}
        self._scratch: dict = {}

    @property
    def lr(self) -> float:
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        # a Python float: a NumPy float64 scalar would upcast float32 updates; NaN, inf or a
        # negative rate (a step up the gradient) is refused
        self._lr = validate.finite_float(type(self).__name__, "lr", value, 0.0)

    def get_config(self) -> dict:
        return {"lr": self.lr}

    def _slot(self, slot: str, i: int, p):
        """State array ``slot`` of parameter ``i`` (zeros of p's shape and dtype at first use)."""
        buf = self.state[slot].get(i)
        if buf is None:
            buf = self.state[slot][i] = backend.xp.zeros_like(p)
        elif buf.shape != p.shape:
            raise ValueError(f"{type(self).__name__}: parameter {i} has shape {tuple(p.shape)} but its "
                             f"'{slot}' state has shape {tuple(buf.shape)}: pass the same parameter "
                             f"list, in the same order, at every step")
        return buf

    def _tmp(self, p, k: int = 0):
        """Scratch buffer k for arrays like p (shared by all parameters of that shape)."""
        key = (tuple(p.shape), str(p.dtype), k)
        buf = self._scratch.get(key)
        if buf is None:
            buf = self._scratch[key] = backend.xp.empty_like(p)
        return buf

    def step(self, params, grads) -> None:
        if len(params) != len(grads):
            raise ValueError(f"{type(self).__name__}.step: {len(params)} params but {len(grads)} grads")
        self.t += 1
        for i, (p, g) in enumerate(zip(params, grads)):
            if p.shape != g.shape:
                raise ValueError(f"{type(self).__name__}.step: parameter {i} has shape {tuple(p.shape)}, "
                                 f"its gradient {tuple(g.shape)}")
            self._update(i, p, g)

    def _update(self, i: int, p, g) -> None:
        raise NotImplementedError

    # ---- checkpoints ------------------------------------------------------------------------
    def state_dict(self) -> tuple[dict, dict]:
        """(arrays, meta): arrays ``"<slot>/<i>"`` (live backend arrays, not copies) and meta
        ``{"class_name", "config", "t"}`` (JSON-serialisable, includes the current lr)."""
        arrays = {f"{slot}/{i}": a for slot, per in self.state.items() for i, a in per.items()}
        meta = {"class_name": type(self).__name__, "config": self.get_config(), "t": self.t}
        return arrays, meta

    def load_state_dict(self, arrays: dict, meta: dict) -> None:
        """Restore what ``state_dict`` gave (the lr and hyperparameters included)."""
        name = type(self).__name__
        if meta.get("class_name") != name:
            raise ValueError(f"{name}.load_state_dict: the state is from a {meta.get('class_name')} optimizer")
        for key, value in meta.get("config", {}).items():
            setattr(self, key, value)
        self.t = int(meta.get("t", 0))
        self.state = {slot: {} for slot in self.slots}
        for key, a in arrays.items():
            slot, _, i = key.partition("/")
            if slot not in self.state or not i.isdigit():
                raise ValueError(f"{name}.load_state_dict: unexpected state array {key!r}")
            self.state[slot][int(i)] = backend.xp.array(a)  # a copy on the current backend

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum and L2 weight decay.

    g <- g + wd * p;   v <- mu * v + g;   p <- p - lr * (g + mu * v if nesterov else v)
    (plain SGD when mu = 0: p <- p - lr * g). Same as ``torch.optim.SGD`` with dampening 0.
    The rate is ``lr`` or, Keras's name, ``learning_rate`` (default 1.0), as in every optimizer here.
    """

    slots = ("momentum",)

    def __init__(self, lr: float | None = None, momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, *, learning_rate: float | None = None):
        super().__init__(_rate("SGD", lr, learning_rate, 1.0))
        if nesterov and momentum <= 0:
            raise ValueError("SGD: nesterov=True needs momentum > 0")
        self.momentum = validate.finite_float("SGD", "momentum", momentum, 0.0)
        self.nesterov = validate.flag("SGD", "nesterov", nesterov)
        self.weight_decay = validate.non_negative_float("SGD", "weight_decay", weight_decay)

    def get_config(self) -> dict:
        return {"lr": self.lr, "momentum": self.momentum, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def _update(self, i, p, g):
        xp = backend.xp
        if self.weight_decay:
            d = self._tmp(p, 1)
            xp.multiply(p, self.weight_decay, out=d)
            d += g
            g = d  # the decayed gradient lives in scratch: the caller's grads stay untouched
        tmp = self._tmp(p)
        if self.momentum:
            v = self._slot("momentum", i, p)
            v *= self.momentum
            v += g
            if self.nesterov:
                xp.multiply(v, self.momentum, out=tmp)
                tmp += g
                tmp *= -self.lr
            else:
                xp.multiply(v, -self.lr, out=tmp)
        else:
            xp.multiply(g, -self.lr, out=tmp)
        p += tmp


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015), as ``torch.optim.Adam``; ``weight_decay`` adds wd * p to g (L2).

    m <- b1 m + (1 - b1) g;   v <- b2 v + (1 - b2) g^2
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
    """

    slots = ("m", "v")

    def __init__(self, lr: float | None = None, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, *, learning_rate: float | None = None):
        name = type(self).__name__
        super().__init__(_rate(name, lr, learning_rate, 1e-3))
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            validate.fail(name, f"betas must be two numbers in [0, 1), got {betas!r}")
        self.betas = tuple(validate.finite_float(name, "betas", b, 0.0, 1.0, high_open=True) for b in betas)
        self.eps = validate.non_negative_float(name, "eps", eps)
        self.weight_decay = validate.non_negative_float(name, "weight_decay", weight_decay)

    def get_config(self) -> dict:
        return {"lr": self.lr, "betas": list(self.betas), "eps": self.eps, "weight_decay": self.weight_decay}

    def load_state_dict(self, arrays, meta):
        super().load_state_dict(arrays, meta)
        self.betas = tuple(float(b) for b in self.betas)  # JSON gave a list

    def _decay(self, p) -> None:
        """Decoupled weight decay (AdamW only)."""

    def _l2(self, p, g):
        if not self.weight_decay:
            return g
        d = self._tmp(p, 1)
        backend.xp.multiply(p, self.weight_decay, out=d)
        d += g
        return d

    def _update(self, i, p, g):
        xp = backend.xp
        b1, b2 = self.betas
        self._decay(p)
        g = self._l2(p, g)
        m = self._slot("m", i, p)
        v = self._slot("v", i, p)
        tmp = self._tmp(p)
        m *= b1
        xp.multiply(g, 1.0 - b1, out=tmp)
        m += tmp
        v *= b2
        xp.multiply(g, g, out=tmp)
        tmp *= 1.0 - b2
        v += tmp
        bc1 = 1.0 - b1 ** self.t
        bc2 = 1.0 - b2 ** self.t
        xp.sqrt(v, out=tmp)
        tmp *= 1.0 / math.sqrt(bc2)
        tmp += self.eps
        xp.divide(m, tmp, out=tmp)
        tmp *= -self.lr / bc1
        p += tmp


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter 2019), as ``torch.optim.AdamW``:
    p <- p (1 - lr wd) first, then the Adam step without any L2 term in g."""

    def __init__(self, lr: float | None = None, betas=(0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01, *, learning_rate: float | None = None):
        super().__init__(lr, betas, eps, weight_decay, learning_rate=learning_rate)

    def _decay(self, p):
        if self.weight_decay:
            p *= 1.0 - self.lr * self.weight_decay

    def _l2(self, p, g):
        return g


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW}


def get(name: str, **kwargs) -> Optimizer:
    """An optimizer by name (``sgd``, ``adam``, ``adamw``; any case)."""
    key = name.lower()
    if key not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; known: {sorted(OPTIMIZERS)}")
    return OPTIMIZERS[key](**kwargs)


def from_state_dict(arrays: dict, meta: dict) -> Optimizer:
    """Rebuild the optimizer a ``state_dict`` came from (class, hyperparameters, state)."""
    classes = {cls.__name__: cls for cls in OPTIMIZERS.values()}
    name = meta.get("class_name")
    if name not in classes:
        raise ValueError(f"unknown optimizer class {name!r} in state; known: {sorted(classes)}")
    opt = classes[name](**meta.get("config", {}))
    opt.load_state_dict(arrays, meta)
    return opt


def clip_grad_norm(grads, max_norm) -> float:
    """Scale ``grads`` in place so that their global L2 norm is at most ``max_norm``.

    norm = sqrt(sum over all arrays of sum(g^2)); when norm > max_norm every g is multiplied
    by max_norm / (norm + 1e-6) (as ``torch.nn.utils.clip_grad_norm_``). Returns the norm
    *before* clipping, as a float. ``max_norm=None`` only measures; a negative, NaN or inf
    ``max_norm`` is refused (ValueError naming it: a negative one would flip the gradients).
    A NaN or inf norm leaves the gradients as they are (the caller sees the norm and can stop).
    """
    if max_norm is not None:
        max_norm = validate.non_negative_float("clip_grad_norm", "max_norm", max_norm)
    xp = backend.xp
    total = 0.0
    for g in grads:
        flat = g.reshape(-1)
        total += float(xp.vdot(flat, flat))  # BLAS dot: no g*g temporary
    norm = math.sqrt(total)
    if max_norm is not None and math.isfinite(norm):
        coef = max_norm / (norm + 1e-6)
        if coef < 1.0:
            for g in grads:
                g *= coef
    return norm


# ---- learning-rate schedules ---------------------------------------------------------------


class StepDecay:
    """Zaremba et al. (2014): keep lr for the first ``start_epoch`` epochs, then multiply it by
    ``decay`` after every further epoch.

    Convention: epochs are numbered from 1 and ``epoch_end(epoch)`` is called after epoch
    ``epoch`` finished. It sets the lr of the *next* epoch to
    ``base_lr * decay ** max(epoch - start_epoch + 1, 0)``, i.e. lr *= decay after each epoch
    >= start_epoch. Epoch e therefore trains at ``base_lr * decay ** max(e - start_epoch, 0)``
    (``lr_at(e)``): zaremba-small, ``StepDecay(opt, 0.5, start_epoch=4)`` with lr 1, trains
    epochs 1-4 at 1, epoch 5 at 0.5, epoch 13 at 0.5 ** 9, as the TensorFlow PTB tutorial's
    ``lr_decay ** max(i + 1 - max_epoch, 0)``. The lr is computed from ``base_lr`` (the
    optimizer's lr at construction), so calling ``epoch_end`` again for the same epoch, or
    after a resume, gives the same value.
    """

    def __init__(self, optimizer: Optimizer, decay: float, start_epoch: int):
        self.optimizer = optimizer
        self.decay = validate.decay_factor("StepDecay", "decay", decay)
        self.start_epoch = int(start_epoch)
        self.base_lr = optimizer.lr
        self.last_epoch = 0

    def lr_at(self, epoch: int) -> float:
        """The learning rate epoch ``epoch`` (1-based) trains with."""
        return self.base_lr * self.decay ** max(epoch - self.start_epoch, 0)

    def epoch_end(self, epoch: int, row: dict | None = None) -> float:
        """Epoch ``epoch`` has finished: set and return the lr for epoch ``epoch + 1`` (``row``,
        the epoch's metrics, is not needed: the rate follows the epoch number alone)."""
        self.last_epoch = int(epoch)
        self.optimizer.lr = self.lr_at(epoch + 1)
        return self.optimizer.lr

    def state_dict(self) -> dict:
        return {"decay": self.decay, "start_epoch": self.start_epoch, "base_lr": self.base_lr,
                "last_epoch": self.last_epoch}

    def load_state_dict(self, state: dict) -> None:
        self.decay = float(state["decay"])
        self.start_epoch = int(state["start_epoch"])
        self.base_lr = float(state["base_lr"])
        self.last_epoch = int(state["last_epoch"])
        if self.last_epoch:
            self.optimizer.lr = self.lr_at(self.last_epoch + 1)


class ReduceLROnPlateau:
    """Multiply lr by ``factor`` when the validation loss stops improving.

    ``step(val_loss)`` once per evaluation: the loss improves when it is below
    ``best - threshold``; after more than ``patience`` evaluations in a row without
    improvement, lr <- max(lr * factor, min_lr) and the count restarts (``torch.optim.
    lr_scheduler.ReduceLROnPlateau`` in "min" mode with an absolute threshold and no
    cooldown). patience=0 reduces at the first evaluation that does not
    improve. A NaN loss counts as no improvement.

    It also serves the trainer as an epoch schedule (``lr_at``, ``epoch_end(epoch, row)``),
    reading ``row[monitor]`` after each epoch: in a time budget of unknown length the rate
    falls only when the loss stops falling, where a decay per epoch would reach ~0 long
    before the budget ends.
    """

    def __init__(self, optimizer: Optimizer, factor: float = 0.5, patience: int = 0,
                 min_lr: float = 0.0, threshold: float = 0.0, monitor: str = "valid_loss"):
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        self.optimizer = optimizer
        self.factor = float(factor)
        self.patience = int(patience)
        self.min_lr = float(min_lr)
        self.threshold = float(threshold)
        self.monitor = monitor
        self.best = math.inf
        self.bad_epochs = 0

    def lr_at(self, epoch: int) -> float:
        """The rate the next epoch trains with: the current one (it follows the losses seen)."""
        return self.optimizer.lr

    def epoch_end(self, epoch: int, row: dict | None = None) -> float:
        """Epoch ``epoch`` has finished with the metrics ``row``: record ``row[monitor]``."""
        if row is not None and row.get(self.monitor) is not None:
            self.step(row[self.monitor])
        return self.optimizer.lr

    def step(self, val_loss: float) -> float:
        """Record one validation loss; returns the (possibly reduced) lr."""
        val_loss = float(val_loss)
        if val_loss < self.best - self.threshold:  # False for NaN
            self.best = val_loss
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs > self.patience:
                self.optimizer.lr = max(self.optimizer.lr * self.factor, self.min_lr)
                self.bad_epochs = 0
        return self.optimizer.lr

    def state_dict(self) -> dict:
        # JSON has no infinity: before the first step best is stored as None
        return {"factor": self.factor, "patience": self.patience, "min_lr": self.min_lr,
                "threshold": self.threshold, "monitor": self.monitor,
                "best": None if math.isinf(self.best) else self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.factor = float(state["factor"])
        self.patience = int(state["patience"])
        self.min_lr = float(state["min_lr"])
        self.threshold = float(state.get("threshold", 0.0))
        self.monitor = state.get("monitor", "valid_loss")
        self.best = math.inf if state["best"] is None else float(state["best"])
        self.bad_epochs = int(state["bad_epochs"])
