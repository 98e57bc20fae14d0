"""Atomic file writes: a crash or a full disk never leaves half a file behind.

The file gets the mode an ordinary ``open`` would give it (0666 less the umask: 0644 as a
rule), not the 0600 of a temporary file; a write that fails (a full disk) raises an OSError
naming ``path``."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, IO


def atomic_write(path, write: Callable[[IO], None], binary: bool = True) -> Path:
    """Call ``write(f)`` on a temporary file in ``path``'s folder, fsync it, then rename it
    over ``path`` (``os.replace`` is atomic on POSIX and Windows)."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None and err.errno is not None:
            raise type(err)(err.errno, f"cannot write {path}: {err.strerror}") from err  # e.g. disk full
        raise
    return path


def _umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def json_default(obj):
    """``json.dumps(..., default=json_default)``: NumPy scalars as Python numbers, anything else
    JSON cannot write as its ``str``."""
    try:
        return obj.item()
    except AttributeError:
        return str(obj)


def split_lines(text: str) -> list[str]:
    """The lines of a text file's contents: split at ``\\n`` alone, with a ``\\r`` before it
    dropped (Windows files). Not ``str.splitlines()``, which also breaks at U+0085, U+2028,
    U+2029, form feeds and other characters that may sit inside one TSV, CoNLL-U or corpus
    line and would cut it in two. A final newline ends the last line (no empty line after it)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]
