"""Variable-length batches: length buckets, right padding with masks, a length cap.

Sequences of different lengths go into one batch by right padding to the longest of them,
with a (B, T) bool mask that is True at real steps (the recurrent layers keep their state at
masked steps, and losses and pooling skip them). Padding costs work, so batches are made of
sequences of similar length::

    order = length_buckets(lengths, batch_size=32, shuffle=True, seed=0, epoch=3)
    for rows in order:                      # each: an int array of example indices
        ids, mask = pad_ids([seqs[i] for i in rows])

``length_buckets`` sorts by length (ties and, when shuffling, near-equal lengths in a seeded
random order), cuts the sorted list into batches, and shuffles the order of the batches: the
same (seed, epoch) gives the same batches.

``cap_lengths`` enforces a maximum length: longer sequences are cut (``on_long="truncate"``,
returning which source lines were cut, so a run can report them) or refused
(``on_long="error"``: a ValueError naming the file and line).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .. import backend


def length_buckets(lengths: Sequence[int], batch_size: int, shuffle: bool = True, seed: int = 0,
                   epoch: int = 0) -> list[np.ndarray]:
    """Batches of example indices, each holding sequences of similar length.

    Without shuffling: indices sorted by length (stable), cut every ``batch_size``. With it, a
    random key in [0, 1) is added to each length before sorting (so sequences of equal length
    mix across epochs, and lengths differ by at most one from a sorted order's), and the
    batches come in a random order, both drawn from ``(seed, epoch)``.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    lengths = np.asarray(lengths, dtype=np.float64)
    if shuffle:
        rng = np.random.default_rng([int(seed), int(epoch)])
        order = np.argsort(lengths + rng.random(lengths.size), kind="stable")
    else:
        order = np.argsort(lengths, kind="stable")
    batches = [order[i:i + batch_size] for i in range(0, order.size, batch_size)]
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def pad(sequences: Sequence[Sequence[int]], length: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad integer sequences with 0: ids (N, L) int64 and mask (N, L) bool."""
    length = max((len(s) for s in sequences), default=0) if length is None else length
    ids = np.zeros((len(sequences), length), dtype=np.int64)
    mask = np.zeros((len(sequences), length), dtype=bool)
    for i, s in enumerate(sequences):
        ids[i, :len(s)] = s[:length]
        mask[i, :len(s)] = True
    return ids, mask


def pad_ids(sequences: Sequence[Sequence[int]], pad_id: int = 0, length: int | None = None):
    """Integer sequences -> (ids (B, T) int64, mask (B, T) bool), right padded with ``pad_id``.

    T is the longest sequence (or ``length``). Arrays are on the current backend (``pad`` is the
    same on the host, padded with 0).
    """
    ids, mask = pad(sequences, length)
    if pad_id:
        ids[~mask] = pad_id
    xp = backend.xp
    return xp.asarray(ids), xp.asarray(mask)


def pad_vectors(sequences: Sequence[np.ndarray], length: int | None = None):
    """Float sequences (T_i, D) -> (x (B, T, D) floatx, mask (B, T) bool), zero padded."""
    if not sequences:
        raise ValueError("pad_vectors: no sequences")
    D = int(np.shape(sequences[0])[1])
    T = max(len(s) for s in sequences) if length is None else int(length)
    x = np.zeros((len(sequences), T, D), dtype=backend.floatx())
    mask = np.zeros((len(sequences), T), dtype=bool)
    for i, seq in enumerate(sequences):
        x[i, :len(seq)] = seq
        mask[i, :len(seq)] = True
    xp = backend.xp
    return xp.asarray(x), xp.asarray(mask)


def pad_chars(words_chars: Sequence[Sequence[Sequence[int]]], length: int | None = None):
    """Per sentence, per word, its character ids -> (B, T, W) int64 zero padded (W: longest word)."""
    T = max((len(s) for s in words_chars), default=0) if length is None else int(length)
    W = max((len(w) for s in words_chars for w in s), default=1)
    chars = np.zeros((len(words_chars), T, max(W, 1)), dtype=np.int64)
    for i, sentence in enumerate(words_chars):
        for j, word in enumerate(sentence):
            chars[i, j, :len(word)] = word
    return backend.xp.asarray(chars)


def cap_lengths(sequences: list, max_len: int | None, lines: Sequence[int] | None = None,
                source: str = "input", on_long: str = "truncate") -> list[int]:
    """Cut every sequence longer than ``max_len`` to its first ``max_len`` steps, in place.

    Returns the source line numbers of the sequences that were cut (index + 1 without
    ``lines``). ``on_long="error"`` raises a ValueError naming ``source`` and the first long
    line instead; ``max_len=None`` changes nothing.
    """
    if on_long not in ("truncate", "error"):
        raise ValueError(f"on_long must be 'truncate' or 'error', got {on_long!r}")
    if max_len is None:
        return []
    if max_len < 1:
        raise ValueError(f"the length cap must be >= 1, got {max_len}")
    cut = []
    for i, seq in enumerate(sequences):
        if len(seq) > max_len:
            line = lines[i] if lines is not None else i + 1
            if on_long == "error":
                raise ValueError(f"{source}, line {line}: sequence of length {len(seq)} is longer than "
                                 f"the cap of {max_len} steps")
            sequences[i] = seq[:max_len]
            cut.append(line)
    return cut


def describe_cut(cut: Sequence[int], source: str, max_len: int, show: int = 5) -> str | None:
    """One line for a run's log: how many sequences of ``source`` were cut, and where."""
    if not cut:
        return None
    where = ", ".join(str(line) for line in cut[:show]) + (", ..." if len(cut) > show else "")
    return f"{source}: {len(cut)} sequence(s) longer than {max_len} steps were cut (lines {where})"
