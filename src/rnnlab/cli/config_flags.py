"""The trainers' flags, generated from their config's fields (``train/config.py``'s ``setting``).

    add_config_flags(parser, LMConfig, defaults=False)   # --hidden, --lr, ... with their help
    values = config_values(args)                        # {"hidden": 200, "lr": None, ...}

A field's flag is ``--field-name`` (or the one its setting names), in the ``--help`` section
its setting names, with its help text; its value is read by the field's own rule, so a flag is
refused with the words the library uses for the same value (``--hidden -5``: "must be a
positive integer, got -5"). A bool field is a switch: ``flag`` sets it, ``off_flag`` clears it
(``--unidirectional`` for ``bidirectional``). ``args.config_class`` remembers the class.
"""
from __future__ import annotations

import argparse
from functools import partial

from ..train.config import SECTIONS, base_type
from .args import reader


def flagged_settings(config_class) -> list:
    """(field, setting) of every field of ``config_class`` that a flag sets."""
    return [(field, rule) for field, rule in config_class.settings() if rule.flag or rule.off_flag]


def add_config_flags(parser, config_class, *, defaults: bool = True) -> dict:
    """Add a flag for every field of ``config_class`` that has one; the argument groups by name.

    ``defaults``: a flag left out gives the field's default (else None, for a command that
    layers a preset under the flags given: ``train lm``)."""
    flagged = flagged_settings(config_class)
    groups = {name: parser.add_argument_group(config_class.SECTION_TITLES.get(name, name)) for name in SECTIONS
              if any(rule.group == name for _, rule in flagged)}
    for field, rule in flagged:
        flag, group = rule.flag, groups[rule.group]
        default = field.default if defaults and not rule.flag_default_none else None
        help_text = _with_default(rule.help, field.default)
        if base_type(field) == "bool":
            _add_switch(group, field.name, flag, rule, default, help_text)
            continue
        options = dict(default=default, help=help_text)
        if rule.metavar:
            options["metavar"] = rule.metavar
        choices = rule.allowed(config_class)
        if choices:
            options["choices"] = choices
        else:
            options["type"] = _reader(config_class, field, rule, flag)
        if rule.positional or rule.const is not None:
            options["nargs"] = "?"
        if rule.const is not None:
            options["const"] = rule.const
        if not rule.positional:   # (a positional argument is named as its field already)
            options["dest"] = field.name
        group.add_argument(flag, **options)
    parser.set_defaults(config_class=config_class)
    return groups


def config_values(args) -> dict:
    """The values of every config field that has a flag, from parsed ``args``."""
    return {field.name: getattr(args, field.name) for field, _ in flagged_settings(args.config_class)}


def given_flags(args, names) -> list[str]:
    """The flags of the fields ``names`` that were given on the command line (of a parser built
    with ``defaults=False``, where a value not None was given), as typed (``--mean-over-time``)."""
    given = []
    for field, rule in args.config_class.settings():
        value = getattr(args, field.name, None)
        if field.name in names and value is not None:
            given.append(rule.off_flag if value is False and rule.off_flag else rule.flag)
    return given


def _add_switch(group, name: str, flag, rule, default, help_text) -> None:
    if flag and rule.off_flag == "--no-" + flag[2:]:
        group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=default, help=help_text)
        return
    if flag:
        group.add_argument(flag, dest=name, action="store_true", default=default, help=help_text)
    if rule.off_flag:
        group.add_argument(rule.off_flag, dest=name, action="store_false", default=default, help=rule.off_help)


def _with_default(help_text: str, default) -> str:
    """The help with the field's default, unless the help speaks of it or there is none to show."""
    if "default" in help_text or default is None or isinstance(default, bool):
        return help_text
    shown = ",".join(f"{v:g}" for v in default) if isinstance(default, tuple) else \
        f"{default:g}" if isinstance(default, float) else default
    return f"{help_text} (default {shown})" if help_text else f"default {shown}"


def _reader(config_class, field, rule, flag: str):
    """A ``type=`` function: the flag's text as the field's type, checked by the field's rule."""
    read = reader({"int": int, "float": float}.get(base_type(field)), partial(rule.checked, config_class), flag)
    read.config_class = config_class   # the rule is the config's: cli/args.py's table leaves it alone
    return read
