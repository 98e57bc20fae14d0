"""The one validation layer for command-line flags: range-checked ``type=`` functions, the table
that gives every numeric flag of every command its rule, and the parser that reports a bad flag
in one line.

    rnnlab train seq2seq --batch 0
    rnnlab train seq2seq: error: argument --batch: must be a positive integer, got '0'

Rules go by the flag's destination name (``RULES``), so a flag means the same thing and is
checked the same way in every command (``--batch``, ``--epochs``, ``--split`` ... of ``train
lm`` and ``train seq2seq`` alike); ``harden(parser)`` applies them to every sub-command after
the commands have registered. A numeric flag without a rule is a bug that tests/cli catch.
"""
from __future__ import annotations

import argparse
import math
import sys

from .. import validate


class UserError(ValueError):
    """A mistake of the user's (a bad flag, file or config): the CLI prints one line, exit 2."""


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``PROG: error: ...``), exit status 2."""

    def error(self, message: str):
        sys.stderr.write(f"{self.prog}: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(2)


def _number(text: str, kind, what: str):
    try:
        value = kind(text)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be {what} (finite), got {text!r}")
    return value


def _ranged(kind, what: str, ok, doc: str):
    """A ``type=`` function: ``text`` read as ``kind`` (finite), kept when ``ok(value)``."""
    def check(text: str):
        value = _number(text, kind, what)
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    check.__doc__ = doc
    return check


positive_int = _ranged(int, "a positive integer", lambda v: v >= 1, "An integer >= 1 (sizes, counts, epochs, batch).")
non_negative_int = _ranged(int, "an integer >= 0", lambda v: v >= 0, "An integer >= 0 (seeds, warm-up steps).")
positive_float = _ranged(float, "a number > 0", lambda v: v > 0, "A finite number > 0 (learning rate, time budget).")
non_negative_float = _ranged(float, "a number >= 0", lambda v: v >= 0,
                             "A finite number >= 0 (clipping norm, 0 = off; temperature, 0 = most likely token).")
finite_float = _ranged(float, "a number", lambda v: True, "Any finite number (not nan, not inf).")
probability = _ranged(float, "a probability 0 <= p < 1", lambda v: 0 <= v < 1,
                      "A dropout rate: 0 <= p < 1 (p = 1 would drop everything).")


def fractions(text: str) -> tuple:
    """``TRAIN,VALID,TEST``: three fractions >= 0 that sum to 1 (never silently renormalised)."""
    try:
        return validate.fractions("", "the split", text.split(","))
    except validate.ArgumentError as e:
        raise argparse.ArgumentTypeError(f"{e} (expected like 0.8,0.1,0.1)") from None


def seed_list(text: str) -> tuple:
    """``S,S,...``: two or more different integers >= 0 (the ``--seeds`` flag)."""
    try:
        seeds = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be seeds separated by commas, like 0,1,2, got {text!r}") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise argparse.ArgumentTypeError(f"must be two or more different integers >= 0, like 0,1,2, got {text!r}")
    return seeds


# destination name -> rule, for every numeric flag of every command
RULES = {
    # sizes and counts
    "batch": positive_int, "eval_batch": positive_int, "epochs": positive_int, "layers": positive_int,
    "hidden": positive_int, "emb": positive_int, "bptt": positive_int, "limit": positive_int,
    "n": positive_int, "max_src_len": positive_int, "max_tgt_len": positive_int, "max_line_chars": positive_int,
    "min_freq": positive_int, "max_vocab": positive_int, "beam": positive_int, "max_decode_len": positive_int,
    "eval_limit": positive_int, "patience": positive_int, "checkpoint_every": positive_int,
    "length": positive_int, "top_k": positive_int, "steps": positive_int, "threads": positive_int,
    "max_len": positive_int, "char_emb": positive_int, "char_hidden": positive_int, "n_train": positive_int,
    "n_valid": non_negative_int, "n_test": non_negative_int, "max_digits": positive_int, "feed_size": positive_int,
    # indices and seeds
    "seed": non_negative_int, "seeds": seed_list, "jobs": positive_int, "data_seed": non_negative_int,
    "decay_start": non_negative_int, "warmup": non_negative_int, "encoder": non_negative_int,
    # real numbers
    "lr": positive_float, "lr_decay": positive_float, "init_scale": positive_float,
    "max_minutes": positive_float, "clip": non_negative_float, "temperature": non_negative_float,
    "length_penalty": non_negative_float, "settle": non_negative_float, "min_delta": non_negative_float,
    "dropout": probability,
    "input_dropout": probability, "word_dropout": probability,
    "valid_fraction": probability, "test_fraction": probability, "split": fractions,
}


def _subparsers(parser: argparse.ArgumentParser):
    """``parser`` and every sub-command parser under it."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _subparsers(sub)


def numeric_actions(parser: argparse.ArgumentParser):
    """(parser, action) for every flag that takes a number or a rule's value."""
    for p in _subparsers(parser):
        for action in p._actions:
            if action.choices is None and (action.type in (int, float) or action.dest in RULES
                                           and action.nargs != 0):
                yield p, action  # (a flag with choices, e.g. eval --split test, is checked by them)


def harden(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Give every numeric flag of ``parser`` and its sub-commands its rule from ``RULES``."""
    for _, action in numeric_actions(parser):
        if action.dest in RULES:
            action.type = RULES[action.dest]
    return parser
