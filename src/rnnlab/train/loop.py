"""Small helpers every trainer shares: the run directory and the divergence check.

A run directory holds what one training run leaves behind::

    RUN_DIR/config.json      the full configuration (with "task": "lm" or "seq2seq")
    RUN_DIR/best.npz         checkpoint with the best validation loss so far
    RUN_DIR/last.npz         the latest checkpoint (what --resume continues from)
    RUN_DIR/metrics.jsonl    one JSON object per line (one per epoch, plus any extra rows)
    RUN_DIR/curves.png       training and validation curves

``config.json`` is written atomically (temporary file in the same folder, fsync, rename), so
a run killed while saving never leaves a half-written config behind.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from ..fileio import atomic_write


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was left untouched."""


def check_finite_loss(loss: float, where: str) -> None:
    """Raise ``TrainingDiverged`` when ``loss`` is NaN or inf.

    ``where`` says where it happened (e.g. ``"epoch 3, step 120"``). Call it before saving any
    checkpoint of the step, so the checkpoints on disk are those of the last finite loss.
    """
    if not math.isfinite(float(loss)):
        raise TrainingDiverged(
            f"training diverged: loss is {float(loss)} at {where}; stopped, keeping the last good "
            f"checkpoint (lower the learning rate or the clipping norm and run again, or resume "
            f"from last.npz)")


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` through a temporary file in the same folder + rename."""
    atomic_write(path, lambda f: f.write(text), binary=False)


class RunDir:
    """One training run's folder: config, checkpoints, metrics log.

    ``RunDir(path)`` creates the folder when it is missing (a new run); ``RunDir(path,
    create=False)`` is for reading an existing run and raises FileNotFoundError without one.
    """

    CONFIG = "config.json"
    METRICS = "metrics.jsonl"

    def __init__(self, path, create: bool = True):
        self.path = Path(path)
        if self.path.exists() and not self.path.is_dir():
            raise NotADirectoryError(f"run directory {self.path} exists and is not a folder")
        if create:
            self.path.mkdir(parents=True, exist_ok=True)
        elif not self.path.is_dir():
            raise FileNotFoundError(f"run directory {self.path} does not exist")

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

    def write_config(self, config: dict) -> Path:
        """Write ``config`` as pretty JSON, atomically."""
        atomic_write_text(self.config_path, json.dumps(config, indent=2, ensure_ascii=False) + "\n")
        return self.config_path

    def read_config(self) -> dict:
        if not self.config_path.exists():
            raise FileNotFoundError(f"{self.config_path} does not exist: {self.path} is not an rnnlab "
                                    f"run directory (train a model with --out {self.path} first)")
        try:
            return json.loads(self.config_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as err:
            raise ValueError(f"{self.config_path} is not valid JSON: {err}") from err

    def log_metrics(self, row: dict) -> None:
        """Append ``row`` as one JSON line to metrics.jsonl (flushed and fsynced)."""
        line = json.dumps(row, ensure_ascii=False, default=_json_default)
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
        lines = self.metrics_path.read_text(encoding="utf-8").splitlines()
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
            json.dumps(r, ensure_ascii=False, default=_json_default) + "\n" for r in rows))

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"


def _json_default(obj):
    try:
        return obj.item()  # NumPy scalars
    except AttributeError:
        return str(obj)
