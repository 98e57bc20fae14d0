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

**Each setting is declared once**, as its field: ``setting(default, help=..., check=...,
resumable=..., ...)`` puts its rule, help text and command-line flag in the field's metadata.
Constructing a config checks every field by its rule (``TaskConfig.__post_init__``), so
``LMConfig(hidden=-5)`` raises ``ValueError: LMConfig: hidden must be a positive integer, got
-5``; the trainers' flags are generated from the same fields (``cli/config_flags.py``), so
``--hidden -5`` is refused by the same rule with the same words; ``--resume`` may change only
the ``resumable`` settings. A field typed ``... | None`` also accepts None.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from typing import Callable

from .. import validate

# entries that the trainer itself adds to every run's config.json
# ("timed_choices": written by older versions, when the per-step products' orientation was timed;
# still accepted so those runs load and resume, and ignored)
COMMON_RUN_KEYS = ("task", "timed_choices", "params")

# the --help sections of the settings' flags
DATA, MODEL, TRAINING, DECODING = "data", "model", "training", "decoding"
SECTIONS = (DATA, MODEL, DECODING, TRAINING)       # in --help's order
# what several tasks' settings say alike
CELLS = ("lstm", "gru", "rnn")
MAX_MINUTES_HELP = ("time budget: stop after this much training time (validate, save; --resume goes on); "
                    "without --epochs, train until the budget or early stopping ends it")
PATIENCE_DEFAULT = "(default: never; 3 with --max-minutes and no --epochs)"


def optimizer_name(owner: str, name: str, value) -> str:
    """An optimizer's name in any case, as ``optim.get`` takes it; returned in lower case."""
    from ..optim import OPTIMIZERS

    return validate.choice(owner, name, value.lower() if isinstance(value, str) else value, tuple(OPTIMIZERS))


@dataclass(frozen=True)
class Setting:
    """What a config field is beyond its default: its rule, help text and flag (see ``setting``)."""

    help: str
    check: Callable | None          # validate-style (owner, name, value) -> value; None: its choices
    choices: tuple | str | None     # the allowed values, or the name of the config class's attribute holding them
    resumable: bool                 # whether --resume may change it
    group: str                      # the --help section of its flag (one of SECTIONS)
    flag: str | None                # "--hidden" (a positional: its name); None: no flag setting it to True / a value
    off_flag: str | None            # a flag that sets it to False ("--unidirectional" for bidirectional)
    off_help: str | None
    positional: bool                # an optional positional argument instead of a flag
    const: object                   # the value of the flag given without one (nargs="?")
    metavar: str | None
    flag_default_none: bool         # the flag's default is None: the command fills the value in (epochs)

    def allowed(self, config_class) -> tuple | None:
        """The choices, read from ``config_class`` when they name its attribute."""
        return getattr(config_class, self.choices) if isinstance(self.choices, str) else self.choices

    def checked(self, config_class, owner: str, name: str, value):
        """``value`` by this setting's rule in canonical form, or ``validate.ArgumentError``
        naming ``owner`` and ``name``."""
        if self.check is not None:
            return self.check(owner, name, value)
        if self.choices is not None:
            return validate.choice(owner, name, value, self.allowed(config_class))
        return value


_AUTO = "auto"   # the flag named after the field


def setting(default, help: str = "", *, check: Callable | None = None, choices=None, resumable: bool = False,
            group: str = TRAINING, flag: str | None = _AUTO, off_flag: str | None = None,
            off_help: str | None = None, positional: bool = False, const=None, metavar: str | None = None,
            flag_default_none: bool = False):
    """A config field declared once: its ``default``, ``help`` text, rule (``check``, a
    ``validate`` function; or ``choices``; a bool or str field without either is checked by its
    type), whether ``--resume`` may change it, and its flag (``--field-name`` unless ``flag``
    says otherwise; ``flag=None`` and no ``off_flag``: the field has no flag)."""
    meta = Setting(help, check, choices, resumable, group, flag, off_flag, off_help, positional, const, metavar,
                   flag_default_none)
    return dataclasses.field(default=default, metadata={"setting": meta})


@dataclass
class TaskConfig:
    """Base of the config dataclasses (LMConfig, Seq2SeqConfig, the coming tasks' configs)."""

    # keys a run's config.json holds besides the fields (the task's own additions)
    RUN_KEYS = ()
    # --help's title of a section of the flags, where it is not the section's name
    SECTION_TITLES = {}
    # fields added after runs were written, with the value those runs trained with: a run's
    # config.json that lacks one resumes with that value, not with today's default
    EARLIER_RUNS = {}

    def __post_init__(self):
        """Every field checked by its setting's rule (and stored in canonical form: ``int``,
        ``float``, a tuple): a bad value raises ``validate.ArgumentError`` (a ValueError) naming it."""
        owner = type(self).__name__
        for field, rule in self.settings():
            value = getattr(self, field.name)
            if value is None and accepts_none(field):
                continue
            setattr(self, field.name, rule.checked(type(self), owner, field.name, value))

    @classmethod
    def settings(cls) -> list[tuple[dataclasses.Field, Setting]]:
        """(field, its ``Setting``) of every field, in declaration order; a field declared
        without ``setting()`` is a bug (its type gives the rule's kind, nothing its range)."""
        out = []
        for field in dataclasses.fields(cls):
            rule = field.metadata.get("setting")
            if rule is None:
                raise TypeError(f"{cls.__name__}.{field.name} is not declared with setting()")
            if rule.check is None and rule.choices is None:
                kind = base_type(field)
                checks = {"bool": validate.flag, "str": validate.text}
                if kind not in checks:
                    raise TypeError(f"{cls.__name__}.{field.name}: a {kind} setting needs a check")
                rule = dataclasses.replace(rule, check=checks[kind])
            if rule.flag == _AUTO:   # a positional argument is named as its field
                flag = field.name if rule.positional else "--" + field.name.replace("_", "-")
                rule = dataclasses.replace(rule, flag=flag)
            out.append((field, rule))
        return out

    @classmethod
    def resumable_fields(cls) -> tuple[str, ...]:
        """The fields ``--resume`` may change (more epochs, another budget ...)."""
        return tuple(field.name for field, rule in cls.settings() if rule.resumable)

    @classmethod
    def redefault(cls, name: str, default):
        """An inherited setting with another default (the same rule, help and flag)."""
        field = next(f for f in dataclasses.fields(cls) if f.name == name)
        return dataclasses.field(default=default, metadata=field.metadata)

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


@dataclass
class TrainingConfig(TaskConfig):
    """The optimisation and run settings of the batch-trained tasks (seq2seq, classify, tag,
    caption); a task gives them its own defaults with ``redefault``."""

    epochs: int = setting(20, "passes over the training data (with --max-minutes and no --epochs: until the "
                          "budget or early stopping)", check=validate.positive_int, resumable=True,
                          flag_default_none=True)
    batch: int = setting(32, "examples per batch", check=validate.positive_int)
    optimizer: str = setting("adam", "", check=optimizer_name, choices=("adam", "sgd", "adamw"))
    lr: float = setting(2e-3, "learning rate", check=validate.positive_float)
    lr_decay: float = setting(1.0, "multiply lr by this after each epoch >= --decay-start (1: constant)",
                              check=validate.decay_factor)
    decay_start: int = setting(1, "epochs at the initial lr before decaying", check=validate.non_negative_int)
    clip: float = setting(5.0, "global gradient-norm clip (0: off)", check=validate.non_negative_float)
    seed: int = setting(0, "seed of the weights, dropout and batch order", check=validate.non_negative_int)
    max_minutes: float | None = setting(None, MAX_MINUTES_HELP, check=validate.positive_float, resumable=True)
    patience: int | None = setting(None, "stop after this many epochs without a better validation figure (the "
                                   f"loss; classify, tag, caption: --monitor) {PATIENCE_DEFAULT}",
                                   check=validate.positive_int, resumable=True)
    checkpoint_every: int | None = setting(None, "save last.npz every this many batches (default: every 60 s)",
                                           check=validate.positive_int, resumable=True, metavar="BATCHES")
    checkpoint_seconds: float = setting(60.0, "seconds between mid-epoch checkpoints",
                                        check=validate.non_negative_float, resumable=True, flag=None)
    progress: bool | None = setting(None, "progress bars (None: when stderr is a terminal)", resumable=True,
                                    flag=None, off_flag="--no-progress",
                                    off_help="no progress bars (default: bars when stderr is a terminal)")


def _type_names(field) -> list[str]:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    return [part.split("[")[0].strip() for part in kind.split("|")]


def base_type(field) -> str:
    """The name of a field's type without ``| None``: "int", "float", "str", "bool", "tuple"."""
    return next((name for name in _type_names(field) if name != "None"), "None")


def accepts_none(field) -> bool:
    """Whether the field is typed ``... | None``."""
    return "None" in _type_names(field)


def _is_tuple(field) -> bool:
    return base_type(field) == "tuple"


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
