"""The one validation layer for command-line flags: ``type=`` functions that check a flag by a
``validate`` rule, the table that gives every numeric flag of every command its rule, and the
parser that reports a bad flag in one line.

    rnnlab train seq2seq --batch 0
    rnnlab train seq2seq: error: argument --batch: must be a positive integer, got '0'

Rules go by the flag's destination name (``RULES``), so a flag means the same thing and is
checked the same way in every command (``--batch`` of ``eval`` and ``translate`` alike);
``harden(parser)`` applies them to every sub-command after the commands have registered. A
numeric flag without a rule is a bug that tests/cli catch. The trainers' flags are not here:
they are generated from their config's fields (``config_flags.py``), each checked by its
field's own rule, the one the library applies (``train/config.py``).
"""
from __future__ import annotations

import argparse
import sys

from .. import validate


class UserError(ValueError):
    """A mistake of the user's (a bad flag, file or config): the CLI prints one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``PROG: error: ...``), exit status 2."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def reader(kind, check, name: str):
    """A ``type=`` function for the flag ``name``: its text read as ``kind`` (int or float; None:
    the text itself), then checked by ``check``, a ``validate``-style (owner, name, value) rule,
    so a flag is refused with the words the library uses for the same value; the message without
    ``name``, which argparse puts in front ("argument --batch: must be a positive integer, got 0")."""
    def read(text: str):
        try:
            value = kind(text) if kind is not None else text
        except ValueError:
            value = text   # not a number: the rule names it ("must be a positive integer, got '2.5'")
        try:
            return check("", name, value)
        except validate.ArgumentError as err:
            raise argparse.ArgumentTypeError(str(err).removeprefix(f"{name} ")) from None

    read.__name__ = name.lstrip("-").replace("-", "_")   # argparse names the type in a few messages
    read.rule = check
    return read


def seed_list(owner: str, name: str, text: str) -> tuple:
    """``S,S,...``: two or more different integers >= 0 (the ``--seeds`` flag)."""
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        validate.fail(owner, f"{name} must be seeds separated by commas, like 0,1,2, got {text!r}")
    if len(seeds) < 2 or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        validate.fail(owner, f"{name} must be two or more different integers >= 0, like 0,1,2, got {text!r}")
    return seeds


# destination name -> (type read, rule), for every numeric flag of every command but the
# trainers' (whose flags are generated from their config's fields and checked by their rules)
RULES = {
    # sizes and counts
    "batch": (int, validate.positive_int), "epochs": (int, validate.positive_int), "n": (int, validate.positive_int),
    "beam": (int, validate.positive_int), "length": (int, validate.positive_int),
    "top_k": (int, validate.positive_int), "steps": (int, validate.positive_int),
    "threads": (int, validate.positive_int), "jobs": (int, validate.positive_int),
    # seeds
    "seed": (int, validate.non_negative_int), "warmup": (int, validate.non_negative_int), "seeds": (None, seed_list),
    # real numbers
    "temperature": (float, validate.non_negative_float), "length_penalty": (float, validate.non_negative_float),
    "settle": (float, validate.non_negative_float),
}


def _subparsers(parser: argparse.ArgumentParser):
    """``parser`` and every sub-command parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _subparsers(sub)


def from_config(action: argparse.Action) -> bool:
    """Whether a flag was generated from a config field (``config_flags.py``): its field's rule checks it."""
    return hasattr(action.type, "config_class")


def numeric_actions(parser: argparse.ArgumentParser):
    """(parser, action) for every flag that takes a number or a rule's value, except those of
    a config's fields (the trainers'), which their field's rule checks."""
    for p in _subparsers(parser):
        for action in p._actions:
            if action.choices is None and not from_config(action) and (
                    action.type in (int, float) or action.dest in RULES and action.nargs != 0):
                yield p, action  # (a flag with choices, e.g. eval --split test, is checked by them)


def harden(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every numeric flag of ``parser`` and its sub-commands its rule from ``RULES``."""
    for _, action in numeric_actions(parser):
        if action.dest in RULES:
            kind, check = RULES[action.dest]
            action.type = reader(kind, check, action.option_strings[0] if action.option_strings else action.dest)
    return parser
