"""The run folder: what one training run leaves behind, and the one place that opens it.

    RUN_DIR/.lock            held (flock, exclusive) by the process training in the folder
    RUN_DIR/config.json      the full configuration (with "task": "lm", "seq2seq", ...)
    RUN_DIR/best.npz         checkpoint with the best validation loss so far
    RUN_DIR/last.npz         the latest checkpoint (what --resume continues from)
    RUN_DIR/metrics.jsonl    one JSON object per line (one per epoch, plus any extra rows)
    RUN_DIR/results.json     the final figures (written before any figure is drawn)
    RUN_DIR/curves.png       training and validation curves
    RUN_DIR/confusion.png, captions.png   a task's pictures of its results

``config.json`` is written atomically (temporary file in the same folder, fsync, rename), so
a run killed while saving never leaves a half-written config behind.

``RunDir.open(path, resume=..., overwrite=...)`` is how a trainer opens a folder to write in:
it takes the lock for the whole run (a second process on the same folder fails with a clear
message), removes stale ``*.tmp`` files a killed writer left, refuses a folder that holds
another run unless ``overwrite`` (that run's files are deleted when the new run starts) and, with ``resume``,
needs one. It writes nothing else: the trainer writes config.json (``start``) only once the
run really starts, so a start that fails (bad data path, bad config) rewrites nothing, and a
folder it created for the run is removed again (``close``). A resume writes the changes it
was given (more epochs ...) only once the checkpoint has been restored.
``RunDir(path, create=False)`` reads a run without locking it.
"""
from __future__ import annotations

import errno
import json
import os
from pathlib import Path

from ..fileio import atomic_write_text, check_output_folder, json_default, split_lines


class RunDir:
    """One training run's folder: config, checkpoints, metrics log.

    ``RunDir(path)`` creates the folder when it is missing (a new run); ``RunDir(path,
    create=False)`` is for reading an existing run and raises FileNotFoundError without one.
    """

    CONFIG = "config.json"
    METRICS = "metrics.jsonl"

    # the files a run writes: what --overwrite deletes, and what no other command may write over
    RUN_FILES = ("config.json", "vocab.json", "best.npz", "last.npz", "metrics.jsonl", "results.json",
                 "curves.png", "confusion.png", "captions.png")
    RESULTS = "results.json"

    def __init__(self, path, create: bool = True):
        self.path = Path(path)
        self._lock_fd = None
        self._replace_on_start = False
        self._created = create and not self.path.exists()  # removed again if no run starts in it
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"run directory {self.path} exists and is not a folder")
        if create:
            check_output_folder(path)  # `--out ""` would put the run into the current folder
            self.path.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_dir():
            raise FileNotFoundError(f"run directory {self.path} does not exist")

    @classmethod
    def open(cls, path, resume: bool = False, overwrite: bool = False) -> "RunDir":
        """The folder ``path``, locked for this process, ready for a new run (or, with
        ``resume``, for continuing the one it holds). Raises ``RunLocked`` when another process
        trains there, ValueError when the folder holds a run and neither ``resume`` nor
        ``overwrite`` was given (or ``resume`` without a run). In a data-parallel job only rank
        0 (the writer) locks and checks the folder; the other ranks get it unlocked, to read from."""
        from .. import distributed

        if not distributed.is_writer():
            return cls(path, create=True)
        run = cls(path, create=True)
        run.lock()
        try:
            run.remove_stale_tmp()
            if resume:
                if not run.config_path.exists():
                    raise ValueError(f"{run.path} holds no run to resume ({run.CONFIG} is missing): start "
                                     f"one without --resume")
            elif run.config_path.exists() or run.metrics_path.exists() or run.last_path.exists():
                if not overwrite:
                    raise ValueError(f"{run.path} already holds a run ({run.config_path}): continue it with "
                                     f"--resume, replace it with --overwrite, or choose another --out")
                run._replace_on_start = True  # the old run goes only once the new one really starts
        except BaseException:
            run.close()
            raise
        return run

    def lock(self) -> None:
        """Take the folder's exclusive lock (held until ``close`` or the process ends)."""
        import fcntl

        fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise RunLocked(f"another process is training in {self.path} (its .lock is held): wait for "
                                f"it to finish, or choose another --out") from None
            raise
        self._lock_fd = fd

    def close(self) -> None:
        """Release the lock (a no-op when this object holds none). A folder this object created
        in which no run started (its start failed: bad data, bad config) is removed again."""
        if self._lock_fd is not None:
            if self._created and not self.config_path.exists():
                (self.path / ".lock").unlink(missing_ok=True)
                self.remove_stale_tmp()
                try:
                    self.path.rmdir()  # only when empty: never a file someone else put there
                except OSError:
                    pass
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def remove_stale_tmp(self) -> list[Path]:
        """Delete the ``*.tmp`` files a writer killed mid-write left (only the lock holder may)."""
        removed = []
        for tmp in self.path.glob("*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
        return removed

    def start(self, config: dict) -> Path:
        """Write config.json of a run that really starts (data read, model built); with
        ``overwrite``, the files of the run that was there are deleted first (only now)."""
        check_run_config(config, self.config_path)  # a run never writes a config it could not read back
        if self._replace_on_start:
            for name in self.RUN_FILES:
                (self.path / name).unlink(missing_ok=True)
            self._replace_on_start = False
        return self.write_config(config)

    @property
    def config_path(self) -> Path:
        return self.path / self.CONFIG

    @property
    def metrics_path(self) -> Path:
        return self.path / self.METRICS

    @property
    def best_path(self) -> Path:
        return self.path / "best.npz"

    @property
    def last_path(self) -> Path:
        return self.path / "last.npz"

    @property
    def curves_path(self) -> Path:
        return self.path / "curves.png"

    @property
    def results_path(self) -> Path:
        return self.path / self.RESULTS

    def write_results(self, metrics: dict) -> Path:
        """Write the final figures as results.json, atomically (before any figure of them is drawn)."""
        atomic_write_text(self.results_path, json.dumps(metrics, indent=2, default=json_default) + "\n")
        return self.results_path

    def write_config(self, config: dict) -> Path:
        """Write ``config`` as pretty JSON, atomically."""
        atomic_write_text(self.config_path, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        return self.config_path

    def read_config(self) -> dict:
        if not self.config_path.exists():
            raise FileNotFoundError(f"{self.config_path} does not exist: {self.path} is not an rnnlab "
                                    f"run directory (train a model with --out {self.path} first)")
        try:
            config = json.loads(self.config_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as err:
            raise ValueError(f"{self.config_path} is not valid JSON: {err}") from None
        if not isinstance(config, dict) or not isinstance(config.get("task"), str):
            raise ValueError(f"{self.config_path} is not an rnnlab run config (an object with a \"task\" name)")
        check_run_config(config, self.config_path)
        return config

    def log_metrics(self, row: dict) -> None:
        """Append ``row`` as one JSON line to metrics.jsonl (flushed and fsynced)."""
        line = json.dumps(row, ensure_ascii=False, default=json_default)
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def read_metrics(self) -> list[dict]:
        """All rows of metrics.jsonl in order ([] when there is none yet).

        A last line cut short by a crash is ignored; a broken line elsewhere is an error.
        """
        if not self.metrics_path.exists():
            return []
        lines = split_lines(self.metrics_path.read_text(encoding="utf-8"))
        rows = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                if number == len(lines):
                    break
                raise ValueError(f"{self.metrics_path}, line {number}: not valid JSON ({err})") from err
        return rows

    def filter_metrics(self, keep) -> None:
        """Rewrite metrics.jsonl with only the rows for which ``keep(row)`` is true (atomic)."""
        self._rewrite_metrics([r for r in self.read_metrics() if keep(r)])

    def truncate_metrics(self, rows: int) -> None:
        """Keep only the first ``rows`` rows of metrics.jsonl (atomic).

        A resumed run calls this with the number of rows its checkpoint had seen, dropping the
        rows written after that checkpoint by the run that was killed.
        """
        current = self.read_metrics()
        if len(current) > rows:
            self._rewrite_metrics(current[:rows])

    def _rewrite_metrics(self, rows: list[dict]) -> None:
        atomic_write_text(self.metrics_path, "".join(
            json.dumps(r, ensure_ascii=False, default=json_default) + "\n" for r in rows))

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


def input_files(source) -> list[Path]:
    """The files a command reading ``source`` must never write over (``fileio.check_output``'s
    ``inputs``): a run folder's own files (``RunDir.RUN_FILES``), or the model file itself."""
    path = Path(source)
    if path.is_dir():
        return [path / name for name in RunDir.RUN_FILES if (path / name).exists()]
    return [path]


_NUMBER = (int, float)
# what a resumable checkpoint's state must hold (types; None allowed where listed)
_RESUME_TYPES = {"epoch": int, "batch": int, "step": int, "loss_sum": _NUMBER, "count": int, "train_s": _NUMBER,
                 "best": (*_NUMBER, type(None)), "bad_epochs": int, "wall_s": _NUMBER, "rows": int,
                 "stopped": (str, type(None)), "first_loss": (*_NUMBER, type(None))}


def check_resume_state(state: dict, path) -> None:
    """The trainer's position in a checkpoint, checked before it is used (CheckpointError naming
    the file): a state edited to ``"epoch": "x"`` or missing ``batch`` is refused here."""
    from ..checkpoint import CheckpointError

    for key, kind in _RESUME_TYPES.items():
        value = state.get(key)
        if key == "first_loss" and key not in state:
            continue  # written since the explosion check; older checkpoints lack it
        if not isinstance(value, kind) or isinstance(value, bool) or (
                kind is int and value < (1 if key == "epoch" else 0)):
            raise CheckpointError(f"checkpoint {str(path)!r}: its training state has {key}={value!r}; "
                                  f"expected {'an integer >= 1' if key == 'epoch' else kind}")


# config classes of the tasks whose config.json is checked field by field (module, class)
TASK_CONFIGS = {"lm": ("rnnlab.train.lm", "LMConfig"), "seq2seq": ("rnnlab.train.seq2seq", "Seq2SeqConfig"),
                "classify": ("rnnlab.train.classify", "ClassifyConfig"), "tag": ("rnnlab.train.tag", "TagConfig"),
                "caption": ("rnnlab.train.caption", "CaptionConfig")}


def check_run_config(stored: dict, where) -> None:
    """A run's config.json checked before use (ValueError naming ``where``): no unknown key,
    and every value by its field's rule, the one the config class applies on
    construction and the command line to the field's flag."""
    import importlib

    if stored.get("task") not in TASK_CONFIGS:
        return
    module, name = TASK_CONFIGS[stored["task"]]
    config_class = getattr(importlib.import_module(module), name)
    try:
        config_class.from_run_config(stored)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{where}: {err}") from None


class RunLocked(RuntimeError):
    """Another process holds the run folder's lock."""
