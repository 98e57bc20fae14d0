"""The one training loop: every task (lm, seq2seq, and the coming classify, tag, caption) runs on it.

A task supplies its batches, the loss and backward of one batch, and its validation metrics
(``Task``); the ``Trainer`` owns everything else: epochs and steps, train/eval mode, progress
bars, metrics.jsonl, best/last checkpoints, exact mid-epoch resume, the time budget, the NaN
guard, early stopping on a validation metric, curves.

    task = LMTask(config)                        # any Task
    result = train(task, out="runs/x")           # opens the run folder, fits, closes it
    result = Trainer(task).fit()                 # in memory: no folder, no files
    result.metrics["perplexity"], result.history, result.model

One optimizer step (``Trainer._step``)::

    loss, count = task.train_step(batch)         # forward + loss + backward: grads in model.grads
    check the loss is finite and not exploding   # else TrainingDiverged (check_exploding_loss)
    self.reduce_gradients(model.grads)           # data-parallel: all-reduce here (no-op alone)
    norm = clip_grad_norm(model.grads, clip)     # then check the norm is finite
    optimizer.step(model.params, model.grads)

Only a writer (``is_writer``: rank 0 of a data-parallel run) writes files; every rank reads
the checkpoint it resumes from. What a task supplies (``Task``, ``Callback``, ``TrainResult``,
``TrainingDiverged``) is in ``train/task.py``, imported here.

**Data parallel** (``mpiexec -n N``): each step takes this rank's rows of the batch
(``Task.shard_batch``), ``reduce_gradients`` averages the gradients weighted by the ranks'
counts, so every rank steps identically; rank 0 alone writes and logs (train/parallel.py).
"""
from __future__ import annotations

import math
import sys
import time

from .. import distributed as dist
from .. import threads
from ..checkpoint import dropout_rng_state, load_checkpoint, save_checkpoint, set_dropout_rng_state, walk_layers
from ..optim import clip_grad_norm
from . import parallel
from .config import UNTIL_BUDGET_EPOCHS
from .run import RunDir, RunLocked, check_resume_state  # noqa: F401  (RunDir is part of this module's interface)
from .task import (Callback, Task, TrainingDiverged, TrainResult, log,  # noqa: F401  (re-exported: the loop's interface)
                   check_exploding_loss, check_finite_loss)


# ---- the trainer --------------------------------------------------------------------------------


class Trainer:
    """Fits ``task``; with ``run`` (an opened ``RunDir``) it writes the run folder, else nothing.

    ``epochs``; ``clip`` (global gradient norm, None/0: off); ``max_minutes`` (time budget: stop
    cleanly with a checkpoint; a new run trains at least one step); ``checkpoint_every`` steps or
    ``checkpoint_seconds`` between mid-epoch last.npz; ``patience`` (epochs without improvement
    of ``monitor`` before stopping; None: never); ``progress`` (None: bars only when stderr is a
    terminal); ``callbacks``; ``is_writer`` (None: ``dist.is_writer()``, False on ranks other
    than 0 of an mpiexec job); ``all_reduce`` (``f(grads)`` averaging gradients in place across
    processes; None: under mpiexec ``dist.allreduce_mean_`` weighted by counts); ``restore_best``
    (evaluate and return the best model rather than the last); ``min_delta`` (as Keras's
    EarlyStopping: an epoch whose ``monitor`` beats the best by less than ``min_delta`` still
    saves best.npz but counts towards ``patience``, so a loss that creeps down by 1e-4 an epoch
    does not hold off early stopping for ever).
    """

    # fields of a task's config that, where present, set the loop (Trainer.from_config)
    CONFIG_SETTINGS = ("epochs", "clip", "max_minutes", "checkpoint_every", "checkpoint_seconds", "patience",
                       "progress", "min_delta")
    RESUME_STATE = ("epoch", "batch", "step", "loss_sum", "count", "train_s", "best", "bad_epochs",
                    "wall_s", "rows", "stopped", "first_loss")

    def __init__(self, task: Task, run: RunDir | None = None, *, epochs: int = 1, clip: float | None = None,
                 max_minutes: float | None = None, checkpoint_every: int | None = None,
                 checkpoint_seconds: float = 60.0, patience: int | None = None, monitor: str | None = None,
                 mode: str | None = None, progress: bool | None = None, callbacks=(), is_writer: bool | None = None,
                 all_reduce=None, restore_best: bool = True,
                 plot_title: str | None = None, log: bool = True, min_delta: float = 0.0):
        self.task = task
        self.run = run
        self.epochs = int(epochs)
        self.clip = clip or None
        self.max_minutes = max_minutes
        self.checkpoint_every = checkpoint_every
        self.checkpoint_seconds = checkpoint_seconds
        self.patience = patience
        self.min_delta = float(min_delta or 0.0)
        self.monitor = monitor or task.monitor
        self.mode = mode or task.mode
        if self.mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {self.mode!r}")
        self.world = dist.world()  # rank 0 of 1 without mpiexec (mpi4py is then not imported)
        self.is_writer = self.world.is_writer if is_writer is None else bool(is_writer)
        # rank 0 alone shows progress and logs
        self.progress = (sys.stderr.isatty() if progress is None else bool(progress)) and self.is_writer
        self.callbacks = list(callbacks)
        self.all_reduce = all_reduce
        self.restore_best = restore_best
        self.plot_title = plot_title
        self.log = log and self.is_writer
        self.stop_training = False
        self.history: list[dict] = []
        self._best_weights = None

    @classmethod
    def from_config(cls, task: Task, run: RunDir | None = None, **options) -> "Trainer":
        """A trainer with the loop settings of ``task.config`` (a ``TaskConfig``); ``options`` win."""
        c = task.config
        settings = {name: getattr(c, name) for name in cls.CONFIG_SETTINGS if hasattr(c, name)}
        settings.update(options)
        return cls(task, run, **settings)

    @property
    def writes(self) -> bool:
        """Whether this process writes files: it has a run folder and is the writer (rank 0)."""
        return self.run is not None and self.is_writer

    # -- the one place between backward and the optimizer step -------------------------------
    def reduce_gradients(self, grads, loss: float = 0.0, count: int = 0) -> tuple[float, int]:
        """Data-parallel training averages ``grads`` across processes here, in place, and
        returns the global (mean loss, count): with ``all_reduce`` that function (the loss and
        count stay this process's), else under mpiexec ``dist.allreduce_mean_`` (weighted by
        each rank's count: the single-process gradient); alone, nothing happens."""
        if self.all_reduce is not None:
            self.all_reduce(grads)
        elif self.world.distributed:
            reduced = dist.allreduce_mean_(grads, count=count, loss=loss)
            return reduced.loss, int(round(reduced.count))
        return loss, count

    # -- fit ------------------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> TrainResult:
        """Train (``resume``: continue the run folder's last.npz) and return the result."""
        task, model = self.task, self.task.model
        if model is None:
            raise RuntimeError(f"{type(task).__name__}.setup() must run before Trainer.fit (no model)")
        pos = {"epoch": 1, "batch": 0, "step": 0, "loss_sum": 0.0, "count": 0, "train_s": 0.0, "best": None,
               "bad_epochs": 0, "wall_s": 0.0, "rows": 0, "stopped": None, "first_loss": None}
        if resume and self.run is not None and self.run.last_path.exists():
            pos = self._restore(pos)
            if self.writes and task.config is not None:  # the changes a resume was given (epochs ...)
                stored = self.run.read_config()
                if {**stored, **task.config.to_dict()} != stored:
                    self.run.write_config({**stored, **task.config.to_dict()})
        else:
            if resume and self.run is not None:
                log(f"rnnlab train {task.name}: {self.run.last_path} does not exist yet: starting "
                     f"{self.run.path} from the beginning")
                if self.writes:
                    self.run.truncate_metrics(0)
            if self.writes and not resume:
                config = task.config.to_dict() if task.config is not None else {}
                self.run.start({"task": task.name, **config, **task.run_config(), "params": model.count_params()})
                task.write_files(self.run)
        if self.run is not None:
            self.history = self.run.read_metrics()[:pos["rows"]] if resume else []
        self.pos = pos
        if self.world.distributed:
            parallel.start_ranks(model, list(walk_layers(model)), self.world.rank, pos["step"],
                                 getattr(self, "_rank_rng_restored", False))
        self.threads = threads.current()
        if self.writes:  # once per run, as the user's record of why it ran so
            log(f"rnnlab train {task.name}: threads: {self.threads.describe()}")
        self._t0, self._wall_before = time.perf_counter(), pos["wall_s"]
        for cb in self.callbacks:
            cb.on_train_begin(self)
        stopped = pos["stopped"] or "epochs"
        while pos["epoch"] <= self.epochs and not pos["stopped"] and self._budget_left():
            stopped = self._epoch()
            if stopped:
                pos["stopped"] = stopped
        if not pos["stopped"]:
            stopped = "epochs" if pos["epoch"] > self.epochs else "time_budget"
        return self._finish(stopped)

    def wall(self) -> float:
        """Training time of the run so far (seconds, across resumes)."""
        return self._wall_before + time.perf_counter() - self._t0

    def epoch_label(self, epoch: int) -> str:
        """"epoch 3/10"; in a time budget with no real epoch count (``UNTIL_BUDGET_EPOCHS``), the
        budget instead: "epoch 3, 2.5 of 7 min"."""
        if self.max_minutes is not None and self.epochs >= UNTIL_BUDGET_EPOCHS:
            return f"epoch {epoch}, {self.wall() / 60:.1f} of {self.max_minutes:g} min"
        return f"epoch {epoch}/{self.epochs}"

    def _budget_left(self) -> bool:
        left = (self.max_minutes is None or self.wall() < 60.0 * self.max_minutes
                or self.pos["step"] == 0)
        if self.world.distributed and self.max_minutes is not None:  # clocks differ: all stop together
            left = not dist.any_rank(not left)[0]
        return left

    def _epoch(self) -> str | None:
        """One epoch (or its rest, after a resume); returns why training stops, or None."""
        task, model, pos = self.task, self.task.model, self.pos
        epoch = pos["epoch"]
        batches = task.epoch_batches(epoch)
        n = len(batches)
        model.train()
        task.start_epoch(epoch, pos["batch"])
        if task.schedule is not None:
            task.optimizer.lr = task.schedule.lr_at(epoch)
        for cb in self.callbacks:
            cb.on_epoch_begin(self, epoch)
        bar = self._bar(n, pos["batch"], self.epoch_label(epoch))
        t_epoch, last_save = time.perf_counter(), time.perf_counter()
        train_s_before = pos["train_s"]
        out_of_time = False
        for i in range(pos["batch"], n):
            loss, count = self._step(batches[i], f"epoch {epoch}, {task.unit} {i + 1}/{n}")
            pos["loss_sum"] += loss * count
            pos["count"] += count
            pos["step"] += 1
            pos["batch"] = i + 1
            pos["train_s"] = train_s_before + time.perf_counter() - t_epoch
            if bar is not None:
                bar.update(1)
                if i % 10 == 0 or i + 1 == n:
                    bar.set_postfix_str(f"{task.postfix(pos['loss_sum'] / max(pos['count'], 1))} "
                                        f"lr {task.optimizer.lr:.3g}", refresh=False)
            if not self._budget_left() and pos["batch"] < n:
                out_of_time = True
                break
            due = (pos["batch"] % self.checkpoint_every == 0) if self.checkpoint_every else \
                (time.perf_counter() - last_save >= self.checkpoint_seconds)
            if self.world.distributed and not self.checkpoint_every:  # saving is collective
                due = dist.any_rank(due)[0]
            if due and pos["batch"] < n:
                self._save_last()
                last_save = time.perf_counter()
            for cb in self.callbacks:
                cb.on_batch_end(self, epoch, i + 1, loss)
            if self.stop_training:
                break
        if bar is not None:
            bar.close()
        pos["train_s"] = train_s_before + time.perf_counter() - t_epoch
        epoch_done = pos["batch"] >= n

        # -- end of the epoch (or of the budget): validate, log, checkpoint, schedule
        self._check_weights(f"at the end of epoch {epoch}, {task.unit} {pos['batch']}")
        mean = pos["loss_sum"] / max(pos["count"], 1)
        row = {"epoch": epoch, "train_loss": mean, **task.train_metrics(mean, pos["count"], pos["train_s"]),
               **self._validate(), "lr": task.optimizer.lr, "step": pos["step"], "wall_s": self.wall()}
        if not epoch_done:
            row["partial"] = pos["batch"] / n
        if self.monitor not in row:
            raise KeyError(f"{type(task).__name__}.validate() gave no {self.monitor!r} (the monitored metric); "
                           f"it gave {sorted(row)}")
        self.history = [r for r in self.history if not (r.get("partial") and r.get("epoch") == epoch)]
        self.history.append(row)
        if self.writes:
            # a row for part of this epoch (an earlier run stopped by its time budget) is superseded
            self.run.filter_metrics(lambda r: not (r.get("partial") and r.get("epoch") == epoch))
            self.run.log_metrics(row)
        pos["rows"] = len(self.history)
        if self.log:
            log(f"{self.epoch_label(epoch)}: {task.describe_epoch(row)}")
        value = row[self.monitor]
        best = pos["best"]
        if best is None or (value < best if self.mode == "min" else value > best):
            gain = math.inf if best is None else abs(value - best)
            pos["best"] = value
            self._save_best(epoch, value)
            if gain > self.min_delta:
                pos["bad_epochs"] = 0
            elif epoch_done:
                pos["bad_epochs"] += 1
        elif epoch_done:
            pos["bad_epochs"] += 1
        stop = None
        if out_of_time:
            stop = "time_budget"
            if self.log:
                log(f"rnnlab train {task.name}: time budget of {self.max_minutes:g} min used up in epoch {epoch}")
        elif epoch_done:
            if task.schedule is not None:
                task.schedule.epoch_end(epoch, row)
            pos.update(epoch=epoch + 1, batch=0, loss_sum=0.0, count=0, train_s=0.0)
            if self.patience is not None and pos["bad_epochs"] >= self.patience:
                stop = "early_stopping"
                if self.log:
                    by = f" by more than {self.min_delta:g}" if self.min_delta else ""
                    log(f"rnnlab train {task.name}: {self.monitor} did not improve{by} for {self.patience} "
                         f"epochs: stopping early")
        for cb in self.callbacks:
            cb.on_epoch_end(self, epoch, row)
        if self.stop_training and stop is None:
            stop = "callback"
        # a time-budget stop stays resumable (a larger budget goes on); the others are final
        self.pos["stopped"] = stop if stop not in (None, "time_budget") else None
        self._save_last()
        self._plot()
        return stop

    def _step(self, batch, where: str) -> tuple[float, int]:
        task, model = self.task, self.task.model
        if self.world.distributed:
            loss, count = parallel.train_shard(task, batch, self.world.size)
        else:
            loss, count = task.train_step(batch)
        loss, count = self.reduce_gradients(model.grads, loss, count)
        check_finite_loss(loss, where)
        check_exploding_loss(loss, self.pos["first_loss"], where)
        if self.pos["first_loss"] is None:
            self.pos["first_loss"] = float(loss)
        norm = clip_grad_norm(model.grads, self.clip)
        self.last_grad_norm = norm  # the step's global gradient norm before clipping (for callbacks)
        check_finite_loss(norm, f"{where} (gradient norm)")
        task.optimizer.step(model.params, model.grads)
        return float(loss), int(count)

    def _validate(self) -> dict:
        model = self.task.model
        model.eval()
        try:
            return self.task.validate()
        finally:
            model.train()

    # -- checkpoints ------------------------------------------------------------------------------
    def _check_weights(self, what: str) -> None:
        """The NaN guard before a save: never replace a good checkpoint by a broken one."""
        xp_finite = all(bool(_isfinite(p)) for p in self.task.model.params)
        if not xp_finite:
            raise TrainingDiverged(f"training diverged: the weights hold NaN or inf {what}; stopped, keeping "
                                   f"the last good checkpoint")

    def _state(self) -> dict:
        task = self.task
        return {**{k: self.pos[k] for k in self.RESUME_STATE}, "wall_s": self.wall(),
                "task": task.state_dict(),
                "schedule": task.schedule.state_dict() if task.schedule is not None else None,
                "rng": dropout_rng_state(task.model),
                # every rank's dropout generators (rank order), for an exact resume with the same N
                **({"rng_ranks": dist.allgather_list([dropout_rng_state(task.model)])}
                   if self.world.distributed else {})}

    def _save_last(self) -> None:
        self._check_weights("before saving last.npz")
        if self.run is None:
            return
        if self.world.distributed and not dist.params_in_sync(self.task.model.params):
            raise RuntimeError("the data-parallel ranks hold different weights (a task or optimizer "
                               "that is not deterministic?): not saving last.npz")
        state = self._state()  # on every rank: a task's state_dict may gather across ranks
        if not self.writes:
            return
        save_checkpoint(self.run.last_path, self.task.model, self.task.optimizer, state)

    def _save_best(self, epoch: int, value: float) -> None:
        self._check_weights("before saving best.npz")
        if self.writes:
            save_checkpoint(self.run.best_path, self.task.model, state={"epoch": epoch, self.monitor: value})
        elif self.run is None and self.restore_best:
            self._best_weights = [w.copy() for w in self.task.model.get_weights()]

    def _restore(self, pos: dict) -> dict:
        task, model = self.task, self.task.model
        task.check_resume(self.run)
        ckpt = load_checkpoint(self.run.last_path, into=model)  # builds a lazily built model too
        state = ckpt.state or {}
        check_resume_state(state, self.run.last_path)
        # (a "timed_choices" record of older checkpoints is ignored: the products follow the shapes now)
        task.optimizer.load_state_dict(ckpt.optimizer_arrays, ckpt.optimizer_meta)
        if task.schedule is not None and state.get("schedule") is not None:
            task.schedule.load_state_dict(state["schedule"])
        ranks = state.get("rng_ranks")
        self._rank_rng_restored = ranks is not None and len(ranks) == self.world.size and \
            ranks[self.world.rank] is not None  # None: CuPy, whose generators keep no state
        set_dropout_rng_state(model, ranks[self.world.rank] if self._rank_rng_restored else state.get("rng"))
        task.load_state_dict(state.get("task") or {})
        pos = {k: state.get(k, pos[k]) for k in pos}
        if self.writes:  # rows logged after this checkpoint belong to the lost part: drop them
            self.run.truncate_metrics(pos["rows"])
        log(f"rnnlab train {task.name}: resuming {self.run.path} at epoch {pos['epoch']}, {task.unit} "
             f"{pos['batch']}")
        return pos

    # -- the end ----------------------------------------------------------------------------------
    def _finish(self, stopped: str) -> TrainResult:
        task, model = self.task, self.task.model
        if self.restore_best:
            dist.barrier()  # rank 0 may still be writing best.npz, which every rank reads
            if self.run is not None and self.run.best_path.exists():
                load_checkpoint(self.run.best_path, into=model)
            elif self._best_weights is not None:
                model.set_weights(self._best_weights)
        model.eval()
        metrics = dict(task.final_metrics(self.history))
        metrics.update(epochs=max((r["epoch"] for r in self.history), default=0), wall_s=round(self.wall(), 3),
                       threads=self.threads.as_dict())
        if self.run is not None:
            metrics["run_dir"] = str(self.run.path)
        if self.writes:
            self.run.write_results(metrics)  # before the callbacks draw any figure of the results
        result = TrainResult(metrics=metrics, history=list(self.history), model=model,
                             run_dir=str(self.run.path) if self.run is not None else None, stopped=stopped,
                             task=task)
        for cb in self.callbacks:
            cb.on_train_end(self, result)
        return result

    def _plot(self) -> None:
        if not self.writes:
            return
        try:
            from ..plots import plot_curves

            keys = tuple(k for k in self.task.curve_keys() if any(k in r for r in self.history))
            plot_curves(self.history, self.run.curves_path, keys=keys,
                        title=self.plot_title or f"{self.task.name} training")
        except RuntimeError as err:  # matplotlib missing: the metrics are kept all the same
            log(f"warning: no curves plot: {err}")

    def _bar(self, total: int, initial: int, desc: str):
        if not self.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, desc=desc, unit=self.task.unit, file=sys.stderr,
                    dynamic_ncols=True, leave=False)


def train(task: Task, out=None, *, resume: bool = False, overwrite: bool = False, **options) -> TrainResult:
    """Set up ``task`` and fit it; with ``out`` in a run folder opened (locked) for the whole run.

    ``options`` go to ``Trainer.from_config``. A start that fails (data, model) writes nothing:
    config.json is written once the run really starts."""
    run = RunDir.open(out, resume=resume, overwrite=overwrite) if out is not None else None
    try:
        task.setup()
        return Trainer.from_config(task, run, **options).fit(resume=resume)
    finally:
        if run is not None:
            run.close()


def train_from_config(name: str, config_class, build_task, config=None, run_dir=None, *, resume: bool = False,
                      overwrite: bool = False, overrides: dict | None = None, path_keys=(),
                      trainer_options=None) -> TrainResult:
    """What every ``train_<task>(config, run_dir, resume=...)`` does, written once.

    A new run: ``config`` with the data paths named in ``path_keys`` made absolute (a run folder
    names its data wherever it is read), its folder opened (``overwrite`` replaces a run there).
    A resume: the config stored in ``run_dir`` with the ``overrides`` of its resumable settings. Then
    ``build_task(config)`` is set up and fitted; ``trainer_options(task)`` (a dict, or a function
    of the set-up task) goes to ``Trainer.from_config``. Without ``run_dir`` it trains in memory.
    """
    if resume:
        if run_dir is None:
            raise ValueError(f"train_{name}: resume needs the run_dir to continue")
        run = RunDir.open(run_dir, resume=True)
    else:
        if config is None:
            raise ValueError(f"train_{name}: a new run needs a config")
        config = absolute_paths(config, path_keys)
        run = RunDir.open(run_dir, overwrite=overwrite) if run_dir is not None else None
    try:
        if resume:
            config = resumed_config(run, config_class, name, overrides)
        task = build_task(config)
        _setup(task, run.last_path if resume and run.last_path.exists() else None)
        options = trainer_options(task) if callable(trainer_options) else dict(trainer_options or {})
        return Trainer.from_config(task, run, **options).fit(resume=resume)
    finally:
        if run is not None:
            run.close()


def _setup(task, checkpoint=None) -> None:
    """``task.setup()``; resuming from ``checkpoint``, its model may build only the weights that
    checkpoint holds: an edited config.json asking for more is refused before it is allocated."""
    if checkpoint is None:
        task.setup()
        return
    from ..checkpoint import only_stored_weights

    with only_stored_weights(checkpoint):
        task.setup()


def absolute_paths(config, keys):
    """``config`` (a dataclass) with the paths in its fields ``keys`` made absolute."""
    import dataclasses
    from pathlib import Path

    paths = {k: str(Path(v).resolve()) for k in keys if (v := getattr(config, k, None)) is not None}
    return dataclasses.replace(config, **paths) if paths else config


def resumed_config(run: RunDir, config_class, task_name: str, overrides: dict | None):
    """The config stored in ``run`` with the ``overrides`` a resume may change (its
    ``resumable`` settings: more epochs, another budget ...); anything else raises. config.json
    is rewritten with the change by ``Trainer.fit`` once the checkpoint is restored (a resume
    that fails rewrites nothing)."""
    stored = run.read_config()
    if stored.get("task") != task_name:
        raise ValueError(f"{run.config_path} is a {stored.get('task')!r} run, not {task_name}")
    config = config_class.from_run_config(stored)
    changed = {k: v for k, v in (overrides or {}).items() if v is not None and getattr(config, k, None) != v}
    allowed = config_class.resumable_fields()
    unknown = set(changed) - set(allowed)
    if unknown:
        raise ValueError(f"a resumed run keeps its config; only {', '.join(allowed)} can change, "
                         f"not {', '.join(sorted(unknown))}")
    if changed:
        import dataclasses

        config = dataclasses.replace(config, **changed)  # written by Trainer.fit once the resume works
    return config


# ---- helpers ------------------------------------------------------------------------------------


def _isfinite(a) -> bool:
    from .. import backend

    return bool(backend.xp.isfinite(a).all())
