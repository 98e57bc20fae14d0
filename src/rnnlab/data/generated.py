"""Generated datasets, seeded: the same ``seed`` always gives the same data.

Sequence-to-sequence pairs (lists of ``(source, target)`` strings, written as TSV):

- ``addition(n, seed)``: ``"16+75"`` -> ``"91"``, the toy task of Deep Learning from Scratch 2
  (chapter 7), operands of 1 to 3 digits, every question distinct.
- ``dates(n, seed)``: a date written the way people write it, in one of ``DATE_FORMATS``
  (``"september 27, 1994"``, ``"TUE, SEP 27, 1994"``, ``"9/27/94"``, ``"27.09.1994"`` ...)
  -> its ISO form ``"1994-09-27"`` (chapter 8's date task). Two-digit years stand for
  1950-2049, the range the dates are drawn from, so every source has exactly one answer.
- ``copy_pairs(n, seed)``: a random string -> the same string.

Sequence tasks for recurrent layers (arrays, not pairs):

- ``adding_problem(n, length, seed)``: x (n, length, 2), y (n, 1). Channel 0 holds random
  values in [0, 1), channel 1 marks two positions with 1; the target is the sum of the two
  marked values (Hochreiter & Schmidhuber 1997). Guessing 1 gives a mean squared error of
  about 0.167, so anything well below that has learnt to remember.
- ``copy_task(n, length, delay, seed)``: x, y integer ids (n, length + delay + length). The
  model sees ``length`` symbols from 1..n_symbols, ``delay - 1`` blanks (0), a go marker
  (n_symbols + 1), then blanks; it must output blanks and then the symbols again (Arjovsky
  et al. 2016).
- ``embedded_reber(n, min_len, seed)``: strings of the embedded Reber grammar (Hochreiter &
  Schmidhuber 1997), ``"BT" + reber + "TE"`` or ``"BP" + reber + "PE"``: the symbol before the
  final E repeats the second one, across the whole inner string (at least ``min_len`` symbols).
"""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .. import backend
from ..fileio import write_output

MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# The ways a date is written: name -> function of a datetime.date. English names are spelled
# here rather than taken from the locale, so the data is the same on every machine.


def _month(d):
    return MONTHS[d.month - 1]


def _weekday(d):
    return WEEKDAYS[d.weekday()]


DATE_FORMATS = {
    "month_day_year": lambda d: f"{_month(d)} {d.day}, {d.year}",                       # september 27, 1994
    "Month_day_year": lambda d: f"{_month(d).title()} {d.day}, {d.year}",               # September 27, 1994
    "MONTH_DAY_YEAR": lambda d: f"{_month(d).upper()} {d.day}, {d.year}",               # SEPTEMBER 27, 1994
    "WEEKDAY_MONTH_DAY_YEAR": lambda d: f"{_weekday(d).upper()}, {_month(d).upper()} {d.day}, {d.year}",
    "wkd_mon_day_year": lambda d: f"{_weekday(d)[:3].title()}, {_month(d)[:3].title()} {d.day}, {d.year}",
    "MON_DAY_YEAR": lambda d: f"{_month(d)[:3].upper()} {d.day}, {d.year}",             # SEP 27, 1994
    "day_month_year": lambda d: f"{d.day} {_month(d).title()} {d.year}",                # 27 September 1994
    "day_mon_yy": lambda d: f"{d.day} {_month(d)[:3]} {d.year % 100:02d}",             # 27 sep 94
    "m/d/yy": lambda d: f"{d.month}/{d.day}/{d.year % 100:02d}",                        # 9/27/94
    "mm/dd/yyyy": lambda d: f"{d.month:02d}/{d.day:02d}/{d.year}",                      # 09/27/1994
    "dd.mm.yyyy": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",                      # 27.09.1994
    "ordinal": lambda d: f"the {d.day}{_ordinal_suffix(d.day)} of {_month(d)} {d.year}",  # the 27th of september 1994
}

FIRST_DATE = _dt.date(1950, 1, 1)
LAST_DATE = _dt.date(2049, 12, 31)


def _ordinal_suffix(day: int) -> str:
    if 11 <= day % 100 <= 13:
        return "th"
    return {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")


def _check_n(n: int, what: str) -> int:
    n = int(n)
    if n < 1:
        raise ValueError(f"{what}: n must be at least 1, got {n}")
    return n


def dates(n: int, seed: int = 0, formats: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """``n`` distinct (human date, ISO date) pairs, format drawn uniformly from ``formats``."""
    n = _check_n(n, "dates")
    names = list(formats) if formats is not None else list(DATE_FORMATS)
    unknown = [f for f in names if f not in DATE_FORMATS]
    if unknown or not names:
        raise ValueError(f"dates: unknown date formats {unknown}; known: {list(DATE_FORMATS)}")
    span = (LAST_DATE - FIRST_DATE).days + 1
    if n > span * len(names) // 2:
        raise ValueError(f"dates: n={n} is too many distinct pairs for {len(names)} formats "
                         f"over {span} days")
    rng = np.random.default_rng(seed)
    seen: set[str] = set()
    pairs = []
    while len(pairs) < n:
        day = FIRST_DATE + _dt.timedelta(days=int(rng.integers(span)))
        source = DATE_FORMATS[names[int(rng.integers(len(names)))]](day)
        if source in seen:
            continue
        seen.add(source)
        pairs.append((source, day.isoformat()))
    return pairs


def addition(n: int, seed: int = 0, max_digits: int = 3) -> list[tuple[str, str]]:
    """``n`` distinct ("a+b", "a+b's value") pairs; each operand has 1..max_digits digits."""
    n = _check_n(n, "addition")
    if max_digits < 1:
        raise ValueError(f"addition: max_digits must be at least 1, got {max_digits}")
    # Operands are drawn as in Keras' addition_rnn example: a digit count, then a number of that
    # many digits, so short operands are as common as long ones.
    possible = sum(10 ** k for k in range(1, max_digits + 1)) ** 2
    if n > possible // 2:
        raise ValueError(f"addition: n={n} is too many distinct questions with {max_digits} digits")
    rng = np.random.default_rng(seed)
    seen: set[tuple[int, int]] = set()
    pairs = []
    while len(pairs) < n:
        a, b = (int(rng.integers(10 ** int(rng.integers(1, max_digits + 1)))) for _ in range(2))
        if (a, b) in seen:
            continue
        seen.add((a, b))
        pairs.append((f"{a}+{b}", str(a + b)))
    return pairs


def copy_pairs(n: int, seed: int = 0, min_len: int = 3, max_len: int = 8,
               alphabet: str = "abcdefgh") -> list[tuple[str, str]]:
    """``n`` (s, s) pairs of random strings over ``alphabet``: the simplest seq2seq sanity check."""
    n = _check_n(n, "copy_pairs")
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(n):
        length = int(rng.integers(min_len, max_len + 1))
        s = "".join(alphabet[i] for i in rng.integers(len(alphabet), size=length))
        pairs.append((s, s))
    return pairs


def adding_problem(n: int, length: int = 50, seed: int = 0):
    """The adding problem: x (n, length, 2) in floatx, y (n, 1). See the module docstring."""
    n = _check_n(n, "adding_problem")
    if length < 2:
        raise ValueError(f"adding_problem: length must be at least 2, got {length}")
    rng = np.random.default_rng(seed)
    values = rng.random((n, length))
    marks = np.zeros((n, length))
    # one mark in each half, as in the original task, so the two marks are never the same step
    half = length // 2
    first = rng.integers(half, size=n)
    second = rng.integers(half, length, size=n)
    rows = np.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    x = np.stack([values, marks], axis=-1)
    y = (values[rows, first] + values[rows, second])[:, None]
    return backend.asarray(x), backend.asarray(y)


def copy_task(n: int, length: int = 10, delay: int = 20, n_symbols: int = 8, seed: int = 0):
    """The copy task: integer x, y of shape (n, length + delay + length). See the module docstring."""
    n = _check_n(n, "copy_task")
    if length < 1 or delay < 1:
        raise ValueError(f"copy_task: length and delay must be at least 1, got {length}, {delay}")
    rng = np.random.default_rng(seed)
    total = 2 * length + delay
    symbols = rng.integers(1, n_symbols + 1, size=(n, length))
    x = np.zeros((n, total), dtype=np.int64)
    y = np.zeros((n, total), dtype=np.int64)
    x[:, :length] = symbols
    x[:, length + delay - 1] = n_symbols + 1  # go marker: start writing after this step
    y[:, length + delay:] = symbols
    return backend.xp.asarray(x), backend.xp.asarray(y)


# The Reber grammar as a graph: node -> ((symbol, next node), (symbol, next node)); node 6 ends
# the string (with E). The first edge of nodes 2-5 loops back (the string gets longer), the
# second moves towards the end.
REBER_EDGES = {1: (("T", 2), ("P", 3)), 2: (("S", 2), ("X", 4)), 3: (("T", 3), ("V", 5)),
               4: (("X", 3), ("S", 6)), 5: (("P", 4), ("V", 6))}
REBER_SYMBOLS = "BTPSXVE"


def reber(rng, min_len: int = 0) -> str:
    """One string of the Reber grammar, ``B ... E``, whose inner part has at least ``min_len``
    symbols: a walk of the graph that picks each edge half the time, except that it never takes
    an edge to the end while the string is shorter than ``min_len``."""
    node, symbols = 1, ["B"]
    while node != 6:
        loop, onward = REBER_EDGES[node]
        too_short = len(symbols) - 1 < min_len
        symbol, node = loop if (too_short and onward[1] == 6) or rng.random() < 0.5 else onward
        symbols.append(symbol)
    return "".join(symbols) + "E"


def embedded_reber(n: int, min_len: int = 0, seed: int = 0) -> list[str]:
    """``n`` embedded Reber strings ``B (T|P) reber (T|P) E``, the two T/P the same; each inner
    Reber string (with its own B and E) has at least ``min_len`` symbols between them."""
    n = _check_n(n, "embedded_reber")
    if min_len < 0:
        raise ValueError(f"embedded_reber: min_len must be >= 0, got {min_len}")
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        outer = "T" if rng.random() < 0.5 else "P"
        out.append(f"B{outer}{reber(rng, min_len)}{outer}E")
    return out


def write_tsv(pairs: Iterable[tuple[str, str]], path, overwrite: bool = False) -> Path:
    """Write ``source<TAB>target`` lines (UTF-8) atomically; returns the path. An existing file
    is replaced only with ``overwrite``; a pair holding a tab or newline leaves nothing written."""
    def write(f):
        for source, target in pairs:
            if "\t" in source or "\t" in target or "\n" in source or "\n" in target:
                raise ValueError(f"{path}: pair {source!r} -> {target!r} contains a tab or newline")
            f.write(f"{source}\t{target}\n")

    return write_output(path, write, binary=False, overwrite=overwrite)


def write_book(pairs: Iterable[tuple[str, str]], path, overwrite: bool = False) -> Path:
    """Write the pairs as *Deep Learning from Scratch 2*'s date.txt / addition.txt do: one
    ``source_target`` line each, both sides padded with spaces to the longest (``16+75  _91  ``);
    atomically, an existing file replaced only with ``overwrite`` (as ``write_tsv``)."""
    pairs = list(pairs)
    for source, target in pairs:
        if "_" in source or "\n" in source or "\n" in target:
            raise ValueError(f"{path}: pair {source!r} -> {target!r} holds a '_' in its source or a newline")
    width_src = max((len(s) for s, _ in pairs), default=0)
    width_tgt = max((len(t) for _, t in pairs), default=0)

    def write(f):
        for source, target in pairs:
            f.write(f"{source.ljust(width_src)}_{target.ljust(width_tgt)}\n")

    return write_output(path, write, binary=False, overwrite=overwrite)


GENERATORS = {"dates": dates, "addition": addition, "copy": copy_pairs}
