"""Writing files: the one rule every command follows, and atomic writes.

The rule (``check_output``, ``check_output_folder``, ``write_output``), checked before any work
is done: an output is never written over an existing file unless the caller was given
``overwrite`` (the CLI's ``--overwrite``); never over one of the command's own inputs (a run's
checkpoints, the model file being converted), even with ``overwrite``; never to an empty path
or to a folder where a file is meant. Refusals are ``OutputRefused`` (a ``FileExistsError``: the
CLI's one line and exit status 2), naming the flag and the path.

Atomic writes (``atomic_write``): a crash or a full disk never leaves half a file behind. The
file gets the mode an ordinary ``open`` would give it (0666 less the umask: 0644 as a rule), not
the 0600 of a temporary file; a write that fails (a full disk) raises an OSError naming
``path``. Without ``replace`` the finished file is linked into place only if the name is still
free, so a file that appeared meanwhile is not replaced either."""
from __future__ import annotations

import errno
import os
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterable


class OutputRefused(FileExistsError):
    """A write the output rule refuses (see the module docstring)."""


def check_output(path, *, overwrite: bool = False, inputs: Iterable = (), flag: str = "--out",
                 suffix: str | None = None) -> Path:
    """``path`` as a Path once the rule allows writing a file there (``OutputRefused`` names
    ``flag`` otherwise): not empty, not a folder, ending in ``suffix`` when given, none of
    ``inputs`` (the same file by any name: a link, a relative path), and not an existing file
    unless ``overwrite``."""
    if not str(path).strip():
        raise OutputRefused(f"{flag} is empty: name the file to write")
    path = Path(path)
    if path.is_dir():
        raise OutputRefused(f"{flag} {path} is a folder: give the name of the file to write"
                            + (f" (ending in {suffix})" if suffix else ""))
    if suffix and path.suffix.lower() != suffix:
        raise OutputRefused(f"{flag} {path}: the file name must end in {suffix}")
    for source in inputs:
        if _same_file(path, source):
            raise OutputRefused(f"{flag} {path} is this command's own input ({source}): write the output "
                                f"elsewhere (refused even with --overwrite)")
    if not overwrite and (path.exists() or path.is_symlink()):
        raise _exists(path, flag)
    return path


def check_output_folder(path, *, overwrite: bool | None = None, flag: str = "--out") -> Path:
    """``path`` as a Path once the rule allows writing into it as a folder: not empty, not a file;
    with ``overwrite`` given (True or False), a folder that already holds anything is refused
    unless it is True. ``overwrite=None``: the caller checks the folder's content itself (a run
    folder: ``train.run.RunDir``)."""
    if not str(path).strip():
        raise OutputRefused(f"{flag} is empty: name the folder to write in")
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputRefused(f"{flag} {path} exists and is not a folder")
    if overwrite is False and path.is_dir() and any(path.iterdir()):
        raise OutputRefused(f"{flag} {path} already holds files: add --overwrite to write over them, or choose "
                            f"another folder")
    return path


def write_output(path, write: Callable[[IO], None], *, binary: bool = True, overwrite: bool = False,
                 inputs: Iterable = (), flag: str = "--out", suffix: str | None = None) -> Path:
    """``check_output``, then ``atomic_write`` (replacing an existing file only with ``overwrite``)."""
    path = check_output(path, overwrite=overwrite, inputs=inputs, flag=flag, suffix=suffix)
    return atomic_write(path, write, binary, replace=overwrite)


def _exists(path, flag: str = "") -> OutputRefused:
    return OutputRefused(f"{flag} {path}".strip() + " already exists: add --overwrite to replace it, or choose "
                         "another name")


def _same_file(a, b) -> bool:
    """Whether paths ``a`` and ``b`` name one file (for existing files: the same inode)."""
    a, b = Path(a), Path(b)
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): compare where they point
        return a.resolve() == b.resolve()


# errors of os.link on a file system without hard links: the check-then-replace fallback is used
_NO_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK, errno.EXDEV, errno.ENOSYS}


def atomic_write(path, write: Callable[[IO], None], binary: bool = True, replace: bool = True) -> Path:
    """Call ``write(f)`` on a temporary file in ``path``'s folder, fsync it, then rename it
    over ``path`` (``os.replace`` is atomic on POSIX and Windows). ``replace=False``: link it
    to ``path`` only if nothing is there (``OutputRefused`` otherwise, the temporary file gone)."""
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
        if replace:
            os.replace(tmp, path)
        else:
            _link_new(tmp, path)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and err.filename is None and err.errno is not None:
            raise type(err)(err.errno, f"cannot write {path}: {err.strerror}") from err  # e.g. disk full
        raise
    return path


def atomic_write_text(path, text: str, replace: bool = True) -> Path:
    """``atomic_write`` of ``text`` as UTF-8."""
    return atomic_write(path, lambda f: f.write(text), binary=False, replace=replace)


def _link_new(tmp: str, path: Path) -> None:
    """Give the finished ``tmp`` the name ``path`` only if no file has it (then ``tmp`` goes)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise _exists(path) from None
    except OSError as err:
        if err.errno not in _NO_LINKS:
            raise
        if path.exists() or path.is_symlink():
            raise _exists(path) from None
        os.replace(tmp, path)
        return
    os.unlink(tmp)


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
