"""The one ``from_dict`` / ``to_dict`` behaviour of every task's config dataclass.

    @dataclass
    class TagConfig(TaskConfig):
        hidden: int = 64
        ...

    TagConfig.from_dict({"hidden": 32})          # TagConfig(hidden=32, ...)
    TagConfig.from_dict({"hiden": 32})           # ValueError: unknown TagConfig key 'hiden' ...

``from_dict`` rejects a key that is not a field with an error naming the key (a typo in a
config file never passes silently). Fields annotated as ``tuple`` come back as tuples from
JSON lists. A run's ``config.json`` holds the config plus entries the run adds (``task``,
vocabularies, sizes ...): ``from_run_config`` drops exactly the keys the class lists in
``RUN_KEYS`` and still rejects anything else.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass

# entries that the trainer itself adds to every run's config.json
COMMON_RUN_KEYS = ("task", "timed_choices", "params")


@dataclass
class TaskConfig:
    """Base of the config dataclasses (LMConfig, Seq2SeqConfig, the coming tasks' configs)."""

    # keys a run's config.json holds besides the fields (the task's own additions)
    RUN_KEYS = ()

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, data: dict):
        """The config ``data`` describes; an unknown key raises ValueError naming it."""
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__name__}: expected a dict of settings, got {type(data).__name__}")
        names = cls.field_names()
        for key in data:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ValueError(f"unknown {cls.__name__} key {key!r}{hint}; known keys: {', '.join(names)}")
        values = dict(data)
        for f in dataclasses.fields(cls):
            if f.name in values and values[f.name] is not None and _is_tuple(f):
                values[f.name] = tuple(values[f.name])
        return cls(**values)

    @classmethod
    def from_run_config(cls, stored: dict):
        """The config of a run's config.json: its fields, without the run's own entries."""
        extra = set(COMMON_RUN_KEYS) | set(cls.RUN_KEYS)
        return cls.from_dict({k: v for k, v in stored.items() if k not in extra})

    def to_dict(self) -> dict:
        """JSON-ready dict of every field (tuples as lists)."""
        data = dataclasses.asdict(self)
        for key, value in data.items():
            if isinstance(value, tuple):
                data[key] = list(value)
        return data


def _is_tuple(field) -> bool:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    return kind.split("[")[0].strip() == "tuple"
