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
``RUN_KEYS`` and still rejects anything else; a field the stored run predates takes the value
that run trained with (``EARLIER_RUNS``), so a resume never changes an old run's schedule.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass

# entries that the trainer itself adds to every run's config.json
# ("timed_choices": written by older versions, when the per-step products' orientation was timed;
# still accepted so those runs load and resume, and ignored)
COMMON_RUN_KEYS = ("task", "timed_choices", "params")


@dataclass
class TaskConfig:
    """Base of the config dataclasses (LMConfig, Seq2SeqConfig, the coming tasks' configs)."""

    # keys a run's config.json holds besides the fields (the task's own additions)
    RUN_KEYS = ()
    # fields added after runs were written, with the value those runs trained with: a run's
    # config.json that lacks one resumes with that value, not with today's default
    EARLIER_RUNS = {}

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
        return cls.from_dict({**cls.EARLIER_RUNS, **{k: v for k, v in stored.items() if k not in extra}})

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


def checkpoint_source(history: list[dict], monitor: str = "valid_loss", mode: str = "min") -> tuple[dict, dict]:
    """Which checkpoint a run's final figures come from, and that epoch's metrics row.

    The trainer evaluates the best checkpoint by ``monitor`` (best.npz, saved whenever it
    improved); this names it: ``({"checkpoint": "best", "checkpoint_metric": "valid_loss",
    "checkpoint_epoch": 3}, row_of_epoch_3)``, so a figure such as ``valid_exact_match`` is read
    from the same epoch as ``valid_loss``, never from the last one. Without a row holding
    ``monitor``: the last row (``"checkpoint": "last"``), or an empty row when there is none.
    """
    rows = [r for r in history if r.get(monitor) is not None]
    if not rows:
        last = history[-1] if history else {}
        return {"checkpoint": "last", "checkpoint_metric": None, "checkpoint_epoch": last.get("epoch")}, last
    best = rows[0]
    for row in rows[1:]:  # the first of equal values, as the trainer keeps the first
        if (row[monitor] < best[monitor]) if mode == "min" else (row[monitor] > best[monitor]):
            best = row
    source = {"checkpoint": "best", "checkpoint_metric": monitor, "checkpoint_epoch": best.get("epoch")}
    if best.get("partial"):
        source["checkpoint_partial"] = best["partial"]  # fraction of that epoch trained (a budget stop)
    return source, best


# ``--max-minutes`` without ``--epochs``: the budget (or early stopping) ends the run, not a count
UNTIL_BUDGET_EPOCHS = 1_000_000
BUDGET_PATIENCE = 3


def budget_epochs(epochs: int | None, max_minutes: float | None, patience: int | None,
                  default_epochs: int) -> tuple[int, int | None]:
    """(epochs, patience) of a run from its flags. ``--epochs`` wins; without it, a time budget
    means "train until the budget or early stopping ends it" (patience ``BUDGET_PATIENCE``
    unless given), and no budget means ``default_epochs``."""
    if epochs is not None:
        return epochs, patience
    if max_minutes is not None:
        return UNTIL_BUDGET_EPOCHS, patience if patience is not None else BUDGET_PATIENCE
    return default_epochs, patience


def checkpoint_of(state: dict | None, which: str, monitor: str = "valid_loss") -> dict:
    """``checkpoint``, ``checkpoint_metric``, ``checkpoint_epoch`` of a checkpoint read back.

    ``state`` is the checkpoint's own: best.npz holds ``{"epoch", <monitor>}``; last.npz the
    trainer's position, whose ``epoch`` is the next one to train once ``batch`` is 0 (the
    epoch before it finished), else the epoch it stopped in (partly trained)."""
    state = state or {}
    epoch = state.get("epoch")
    if epoch is not None and state.get("batch") == 0 and which == "last":
        epoch -= 1
    metric = next((k for k in state if k.startswith("valid_")), monitor) if which == "best" else None
    return {"checkpoint": which, "checkpoint_metric": metric, "checkpoint_epoch": epoch}


def describe_checkpoint(figures: dict) -> str:
    """The model a report's figures come from, in words, from its ``checkpoint``,
    ``checkpoint_metric`` and ``checkpoint_epoch``: "best checkpoint by valid_loss, epoch 3"
    or "last checkpoint, epoch 4"."""
    text = f"{figures.get('checkpoint')} checkpoint"
    if figures.get("checkpoint_metric"):
        text += f" by {figures['checkpoint_metric']}"
    return text + f", epoch {figures.get('checkpoint_epoch')}"
