"""Sentence pairs for sequence-to-sequence models: TSV files, tokens, splits, padded batches.

File format (Tatoeba / manythings.org): one pair per line, ``source<TAB>target``, optionally
followed by more tab-separated columns (an attribution) that are ignored. A file with no tab
at all whose every line holds a ``_`` is read as *Deep Learning from Scratch 2*'s
``date.txt`` / ``addition.txt`` (``16+75  _91  ``): each line is split at its first ``_``,
and the spaces that pad both sides to a fixed width are dropped, as every column's spaces at
its ends are (rnnlab pads batches itself, with masks; spaces inside a side, such as
``september 27, 1994``, stay tokens); ``sep`` names a separator instead. Blank lines are
skipped, and so are lines with a column longer than ``max_chars`` characters (default
``MAX_CHARS``), reported with their line numbers: one runaway line would otherwise pad a whole
batch to its length. ``check_batch_memory`` compares an estimate of the largest padded batch's
activations with the memory available before training allocates it. ``swap=True`` reads the second column as the source (e.g. French -> English from
``fra.txt``, which is English<TAB>French).

Tokens are characters (``level="char"``) or words (``level="word"``: runs of letters/digits
and single punctuation marks, so ``"Qu'est-ce ?"`` -> ``Qu ' est - ce ?``); ``detokenize``
undoes either so that BLEU is computed on ordinary text. The two sides may use different
levels (``PairData(..., level="char", tgt_level="word")``: Korean characters -> English words).

Batches (``batches``): right-padded with id 0, sorted into buckets of similar source length so
little compute goes to padding. Each ``Batch`` carries

- ``src`` (B, S) int ids, ``src_mask`` (B, S) bool, ``src_lengths`` (B,);
- ``tgt_in`` (B, T): ``<bos> y_1 .. y_n`` (the decoder's teacher-forced input),
  ``tgt_out`` (B, T): ``y_1 .. y_n <eos>`` (what it must predict), ``tgt_mask`` (B, T) bool;
- ``index`` (B,): the rows' positions in the dataset, to put predictions back in order.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from .. import backend, validate
from ..fileio import split_lines
from .memory import check_memory, padded_batch_bytes
from .padding import pad  # noqa: F401  (pairs.pad: the host-side padding of make_batch)
from .vocab import Vocab

_WORD = re.compile(r"\w+|[^\w\s]")
MAX_CHARS = 1000  # default cap on a source or target (characters); None: no cap


BOOK_SEP = "_"  # Deep Learning from Scratch 2's separator (dataset/sequence.py splits at the first "_")


def pair_separator(path, lines: Sequence[str], sep: str | None = None) -> str:
    """The separator of a pairs file: ``sep`` when given; else a tab when any line holds one,
    else ``BOOK_SEP`` when every non-blank line holds it (the book's files, said on stderr);
    else an error naming the first line that has neither."""
    if sep is not None:
        if not sep:
            raise ValueError(f"pairs file {path}: the separator is empty")
        return sep
    filled = [(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
    if not filled or any("\t" in line for _, line in filled):  # an empty file: read_pairs says so
        return "\t"
    if filled and all(BOOK_SEP in line for _, line in filled):
        print(f"pairs file {path}: no tabs, so each line is split at its first '{BOOK_SEP}' (the format of "
              f"Deep Learning from Scratch 2's date.txt and addition.txt); the spaces padding either side are "
              f"dropped (--sep names another separator)", file=sys.stderr)
        return BOOK_SEP
    number, line = next((n, t) for n, t in filled if BOOK_SEP not in t)
    raise ValueError(f"pairs file {path}, line {number}: expected 'source<TAB>target' (or, in a file without "
                     f"tabs, the book's 'source_target'), got {line[:60]!r}")


def read_pairs(path, swap: bool = False, limit: int | None = None,
               max_chars: int | None = MAX_CHARS, sep: str | None = None) -> list[tuple[str, str]]:
    """(source, target) string pairs from a pairs file; errors name the file and the line.
    ``sep``: the separator (None: a tab, or the book's ``_`` in a file without tabs:
    ``pair_separator``); a tab separates columns (more than two: the rest is ignored), any
    other separator splits each line at its first occurrence. Each side loses the spaces at
    its ends. Pairs with a source or target over ``max_chars`` characters are skipped and
    reported on stderr with their line numbers."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"pairs file {path} does not exist")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"pairs file {path} is not valid UTF-8 (byte {err.start}): "
                         f"convert it to UTF-8 first") from err
    if text.startswith("\ufeff"):
        text = text[1:]
    pairs, too_long = [], []
    lines = split_lines(text)
    sep = pair_separator(path, lines, sep)
    shown_sep = "<TAB>" if sep == "\t" else sep
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        columns = line.split(sep) if sep == "\t" else line.split(sep, 1)
        if len(columns) < 2:
            raise ValueError(f"pairs file {path}, line {number}: expected 'source{shown_sep}target', "
                             f"got {line[:60]!r}")
        source, target = columns[0].strip(), columns[1].strip()
        if max_chars is not None and max(len(source), len(target)) > max_chars:
            too_long.append(number)
            continue
        pairs.append((target, source) if swap else (source, target))
        if limit is not None and len(pairs) >= limit:
            break
    if too_long:
        shown = ", ".join(map(str, too_long[:10])) + (" ..." if len(too_long) > 10 else "")
        print(f"pairs file {path}: skipped {len(too_long)} pairs longer than {max_chars} characters (lines "
              f"{shown}; raise the cap with --max-line-chars)", file=sys.stderr)
    if not pairs:
        raise ValueError(f"pairs file {path} holds no 'source{shown_sep}target' lines"
                         + (f" within {max_chars} characters" if too_long else " (it is empty)"))
    return pairs


def pair_batch_bytes(rows: int, src_len: int, tgt_len: int, hidden: int, emb: int, layers: int, vocab: int,
                     directions: int = 1) -> int:
    """The estimate (``data/memory.py``) of a padded batch of ``rows`` pairs: the encoder (of
    ``directions``) over ``src_len`` source tokens, the decoder with its per-step logits over
    ``tgt_len`` target steps."""
    return (padded_batch_bytes(rows, src_len, emb, hidden, layers, directions)
            + padded_batch_bytes(rows, tgt_len, emb, hidden, layers, outputs=vocab))


def check_batch_memory(data: "PairData", batch_size: int, hidden: int, emb: int, layers: int = 1,
                       available: int | None = None, directions: int = 1) -> int:
    """Raise MemoryError (with what to change) when the largest padded batch of ``data`` would
    need more than the memory available (``data/memory.py``); returns the estimate in bytes.
    Padded lengths are those of the longest pairs, so the estimate bounds any batch: the
    encoder (of ``directions``) over the source, the decoder (with its per-step logits) over the target."""
    rows = min(batch_size, len(data))
    src_len = max((len(s) for s in data.src_ids), default=0)
    tgt_len = max((len(t) for t in data.tgt_ids), default=0) + 1  # + <bos>/<eos>
    need = pair_batch_bytes(rows, src_len, tgt_len, hidden, emb, layers, len(data.tgt_vocab), directions)
    return check_memory(need, f"the largest padded batch ({rows} pairs, source {src_len} and target {tgt_len} tokens)",
                        "lower --batch or drop long pairs with --max-src-len / --max-tgt-len", available)


def tokenize(text: str, level: str = "char", lower: bool = False) -> list[str]:
    """Characters or word/punctuation tokens of ``text``."""
    if lower:
        text = text.lower()
    if level == "char":
        return list(text)
    if level == "word":
        return _WORD.findall(text)
    raise ValueError(f"token level must be 'char' or 'word', got {level!r}")


def detokenize(tokens: Sequence[str], level: str = "char") -> str:
    """Text from tokens: characters are concatenated; words are joined by spaces except around
    apostrophes and hyphens, which were split out of words by ``tokenize``."""
    if level == "char":
        return "".join(tokens)
    out = ""
    glue = True
    for token in tokens:
        joins = token in ("'", "-", "’")
        out += token if (glue or joins) else " " + token
        glue = joins
    return out


def split_pairs(pairs: Sequence, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> list[list]:
    """Shuffle ``pairs`` with ``seed`` and cut them into parts of the given fractions."""
    fractions = list(validate.fractions("", "split", fractions))
    order = np.random.default_rng(seed).permutation(len(pairs))
    bounds = np.round(np.cumsum([0.0] + fractions) * len(pairs)).astype(int)
    bounds[-1] = len(pairs)
    parts = [[pairs[i] for i in order[a:b]] for a, b in zip(bounds[:-1], bounds[1:])]
    for name, part, frac in zip(("train", "valid", "test"), parts, fractions):
        if frac > 0 and not part:
            raise ValueError(f"split {fractions} of {len(pairs)} pairs leaves the {name} part empty")
    return parts


@dataclass
class Batch:
    src: object
    src_mask: object
    src_lengths: object
    tgt_in: object
    tgt_out: object
    tgt_mask: object
    index: np.ndarray

    def __len__(self) -> int:
        return int(self.index.shape[0])


class PairData:
    """Token ids of (source, target) pairs under a source and a target vocabulary.

    ``PairData.build(pairs, level)`` makes the vocabularies from these pairs (use it on the
    training split); ``PairData(pairs, src_vocab, tgt_vocab, level)`` encodes other splits with
    existing vocabularies (unknown tokens become ``<unk>``). ``level`` is the source's token
    level and, unless ``tgt_level`` is given, the target's (``src_level``, ``tgt_level``).
    """

    def __init__(self, pairs: Sequence[tuple[str, str]], src_vocab: Vocab, tgt_vocab: Vocab,
                 level: str = "char", lower: bool = False, tgt_level: str | None = None):
        self.pairs = list(pairs)
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.src_level, self.tgt_level, self.lower = level, tgt_level or level, lower
        self.level = self.tgt_level  # what outputs are detokenized with
        self.src_tokens = [tokenize(s, self.src_level, lower) for s, _ in self.pairs]
        self.tgt_tokens = [tokenize(t, self.tgt_level, lower) for _, t in self.pairs]
        self.src_ids = [src_vocab.encode(t) for t in self.src_tokens]
        self.tgt_ids = [tgt_vocab.encode(t) for t in self.tgt_tokens]
        empty = [i for i, s in enumerate(self.src_ids) if not s]
        if empty:
            raise ValueError(f"{len(empty)} pairs have an empty source (first: {self.pairs[empty[0]]!r})")

    @classmethod
    def build(cls, pairs, level: str = "char", lower: bool = False, min_freq: int = 1,
              max_vocab: int | None = None, tgt_level: str | None = None) -> "PairData":
        src = [tokenize(s, level, lower) for s, _ in pairs]
        tgt = [tokenize(t, tgt_level or level, lower) for _, t in pairs]
        src_vocab = Vocab.build(src, min_freq=min_freq, max_size=max_vocab)
        tgt_vocab = Vocab.build(tgt, min_freq=min_freq, max_size=max_vocab)
        return cls(pairs, src_vocab, tgt_vocab, level, lower, tgt_level=tgt_level)

    def __len__(self) -> int:
        return len(self.pairs)

    def batches(self, batch_size: int, shuffle: bool = False, seed: int | None = None,
                rng: np.random.Generator | None = None, bucket: bool = True) -> Iterator[Batch]:
        return batches(self.src_ids, self.tgt_ids, batch_size, self.tgt_vocab.bos_id, self.tgt_vocab.eos_id,
                       shuffle=shuffle, rng=rng if rng is not None else np.random.default_rng(seed),
                       bucket=bucket)


def make_batch(src_ids, tgt_ids, index, bos_id: int, eos_id: int) -> Batch:
    """One padded ``Batch`` (on the current backend) from lists of source and target ids."""
    xp = backend.xp
    src, src_mask = pad(src_ids)
    tgt_in, tgt_mask = pad([[bos_id, *t] for t in tgt_ids])
    tgt_out, _ = pad([[*t, eos_id] for t in tgt_ids])
    return Batch(xp.asarray(src), xp.asarray(src_mask), xp.asarray(src_mask.sum(axis=1)),
                 xp.asarray(tgt_in), xp.asarray(tgt_out), xp.asarray(tgt_mask), np.asarray(index))


def batches(src_ids, tgt_ids, batch_size: int, bos_id: int, eos_id: int, shuffle: bool = False,
            rng: np.random.Generator | None = None, bucket: bool = True) -> Iterator[Batch]:
    """Padded batches over all pairs, each pair exactly once.

    With ``bucket`` the pairs are sorted by source length (then target length) inside chunks
    of 50 batches before being cut into batches, so a batch wastes little time on padding; with
    ``shuffle`` the pairs (before sorting) and the order of the batches are shuffled by ``rng``.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    if len(src_ids) != len(tgt_ids):
        raise ValueError(f"{len(src_ids)} sources for {len(tgt_ids)} targets")
    rng = rng if rng is not None else np.random.default_rng(0)
    n = len(src_ids)
    order = rng.permutation(n) if shuffle else np.arange(n)
    groups = []
    chunk = batch_size * 50
    for start in range(0, n, chunk):
        part = order[start:start + chunk]
        if bucket:
            keys = np.array([len(src_ids[i]) * 10_000 + len(tgt_ids[i]) for i in part])
            part = part[np.argsort(keys, kind="stable")]
        groups.extend(part[i:i + batch_size] for i in range(0, len(part), batch_size))
    if shuffle:
        groups = [groups[i] for i in rng.permutation(len(groups))]
    for idx in groups:
        yield make_batch([src_ids[i] for i in idx], [tgt_ids[i] for i in idx], idx, bos_id, eos_id)
