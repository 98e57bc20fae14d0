"""Atomic file writes: a crash or a full disk never leaves half a file behind.

The file gets the mode an ordinary ``open`` would give it (0666 less the umask: 0644 as a
rule), not the 0600 of a temporary file; a write that fails (a full disk) raises an OSError
naming ``path``.

Config files from anywhere (a model config, a Keras ``config.json``) are parsed as data by
``parse_json`` / ``parse_yaml``: at most ``MAX_NESTING`` levels deep (deeper input is refused
with a ValueError naming the file, never a RecursionError), no YAML aliases (whose expansion
can be exponential), ``read_capped`` refusing a file over ``MAX_CONFIG_BYTES`` unread."""
from __future__ import annotations

import json
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


MAX_CONFIG_BYTES = 16 << 20   # a config file (JSON / YAML): model configs are kilobytes
MAX_NESTING = 64              # levels of objects and lists in a config (a Keras model's: about 10)


def read_capped(path, limit: int = MAX_CONFIG_BYTES) -> bytes:
    """The bytes of ``path``, refused (ValueError naming it) past ``limit`` without reading more."""
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path}: larger than {limit:,} bytes, too large for a config file; refused")
    return data


def check_nesting(value, where: str, limit: int = MAX_NESTING) -> None:
    """ValueError naming ``where`` when the parsed JSON-like ``value`` nests its objects and
    lists deeper than ``limit`` (walked with a stack, not recursion)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > limit:
                raise ValueError(f"{where}: nested more than {limit} levels deep; refused")
            stack.extend((v, depth + 1) for v in (item.values() if isinstance(item, dict) else item))


def parse_json(data, where: str):
    """``data`` (bytes, UTF-8, or str) as JSON, no deeper than ``MAX_NESTING``; ValueError naming
    ``where`` otherwise."""
    try:
        value = json.loads(data.decode("utf-8") if isinstance(data, bytes) else data)
    except RecursionError:
        raise ValueError(f"{where}: nested too deeply to read; refused") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{where}: not valid JSON: {err}") from err
    check_nesting(value, where)
    return value


def parse_yaml(text: str, where: str):
    """``text`` as YAML (``safe_load``: plain data only), after a pass over its events refusing
    aliases and nesting deeper than ``MAX_NESTING``; ValueError naming ``where`` otherwise."""
    try:
        import yaml
    except ImportError as err:
        raise RuntimeError(f"reading {where} needs PyYAML: pip install 'rnnlab[yaml]'") from err

    depth = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise ValueError(f"{where}: uses a YAML alias (*{event.anchor}); a config file needs none: refused")
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_NESTING:
                    raise ValueError(f"{where}: nested more than {MAX_NESTING} levels deep; refused")
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise ValueError(f"{where}: not valid YAML: {err}") from err
