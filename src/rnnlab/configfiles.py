"""Config files from anywhere (a model config for ``rnnlab summary``, a Keras ``config.json``)
parsed as data, within limits: ``read_capped`` refuses a file over ``MAX_CONFIG_BYTES`` unread,
``parse_json`` / ``parse_yaml`` refuse nesting deeper than ``MAX_NESTING`` (a ValueError naming
the file, never a RecursionError) and YAML aliases (whose expansion can be exponential)."""
from __future__ import annotations

import json

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
