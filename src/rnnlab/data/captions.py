"""Captioning data: a fixed feature vector per example and a caption (a word sequence).

Two sources:

- ``load_feature_captions(features.npy, captions.txt)``: any (N, F) float array and N caption
  lines (line i captions row i); different counts, a blank caption, a non-2-D or non-finite
  array are ValueErrors naming the file (and line).
- The handwritten digits (``load_digits``: 1,797 8x8 images, pixel values 0-16, from
  ``$RNNLAB_DATA/digits/digits.csv.gz``, else downloaded) composed side by side into images of 1-4 digits,
  captioned with the digits' English words ("four one two") by ``compose_digit_captions``.
  The source images are split into train / valid / test *first*, so no source image of the
  test set was ever seen in training; the composition is deterministic by seed. Each
  composed image is (8, 8 * max_digits), zero padded on the right; its feature vector is the
  image flattened, scaled to [0, 1].

``CaptionData`` holds the splits and the word vocabulary (specials ``<pad>`` 0, ``<unk>``,
``<bos>``, ``<eos>``); ``split.batches(...)`` gives ``features`` (B, F), ``tgt_in``
(``<bos>`` w_1 .. w_n, padded with 0), ``tgt_out`` (w_1 .. w_n ``<eos>``), and ``mask``.
"""
from __future__ import annotations

import gzip
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..fileio import split_lines
from .corpora import DataError, read_text
from .labeled import find_data
from .padding import length_buckets, pad_ids
from .vocab import Vocab

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@dataclass
class CaptionSplit:
    features: np.ndarray        # (N, F) float64
    captions: list              # list of word lists
    ids: list                   # list of word-id lists (no <bos>/<eos>)
    images: np.ndarray | None = None   # (N, h, w) for the digits, to draw
    source: str = "input"
    sources: list | None = None        # for the digits: the source image indices of each example

    def __len__(self) -> int:
        return len(self.captions)

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0,
                bos_id: int = 2, eos_id: int = 3) -> Iterator[dict]:
        from .. import backend

        xp = backend.xp
        for rows in length_buckets([len(c) for c in self.ids], batch_size, shuffle, seed, epoch):
            tgt_in, mask = pad_ids([[bos_id] + self.ids[i] for i in rows])
            tgt_out, _ = pad_ids([self.ids[i] + [eos_id] for i in rows])
            yield {"features": xp.asarray(self.features[rows], dtype=backend.floatx()), "tgt_in": tgt_in,
                   "tgt_out": tgt_out, "mask": mask, "rows": rows}


@dataclass
class CaptionData:
    train: CaptionSplit
    valid: CaptionSplit | None
    test: CaptionSplit | None
    vocab: Vocab

    @property
    def feature_dim(self) -> int:
        return int(self.train.features.shape[1])


def _encode(vocab: Vocab, features, captions, images=None, source="input") -> CaptionSplit:
    return CaptionSplit(np.asarray(features, dtype=np.float64), captions, [vocab.encode(c) for c in captions],
                        images, str(source))


# ---- features + captions ---------------------------------------------------------------------

def read_captions(path) -> list[list[str]]:
    """One caption a line (whitespace-separated words); a blank line is an error naming it."""
    path = Path(path)
    captions = []
    for number, line in enumerate(split_lines(read_text(path)), start=1):
        words = line.split()
        if not words:
            raise ValueError(f"{path}, line {number}: empty caption")
        captions.append(words)
    return captions


def read_features(path) -> np.ndarray:
    """An (N, F) float array from a ``.npy`` file (no pickles)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"features file {path} does not exist")
    try:
        features = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a NumPy .npy array of numbers ({err})") from None
    if isinstance(features, np.lib.npyio.NpzFile):
        features.close()
        raise ValueError(f"{path}: a .npz archive, not one array: save the features with np.save as a .npy file")
    if features.ndim != 2 or features.dtype.kind not in "fiu":
        raise ValueError(f"{path}: expected an (examples, features) array of numbers, got shape "
                         f"{features.shape} and dtype {features.dtype}")
    if not np.isfinite(features).all():
        row = int(np.flatnonzero(~np.isfinite(features).all(axis=1))[0])
        raise ValueError(f"{path}: row {row} holds NaN or inf")
    return features.astype(np.float64)


def load_feature_captions(features, captions, valid_fraction: float = 0.1, test_fraction: float = 0.1,
                          seed: int = 0, min_freq: int = 1) -> CaptionData:
    """(N, F) features and N caption lines, split at random (seeded) into train / valid / test;
    the vocabulary comes from the training captions."""
    X = read_features(features)
    caps = read_captions(captions)
    if len(caps) != len(X):
        where = f"line {len(X) + 1} and after are extra" if len(caps) > len(X) else \
            f"it ends at line {len(caps)}, the features have {len(X)} rows"
        raise ValueError(f"{captions}: {len(caps)} captions for {len(X)} feature rows in {features} ({where})")
    order = np.random.default_rng(seed).permutation(len(X))
    n_valid, n_test = int(round(len(X) * valid_fraction)), int(round(len(X) * test_fraction))
    parts = {"valid": order[:n_valid], "test": order[n_valid:n_valid + n_test],
             "train": order[n_valid + n_test:]}
    if len(parts["train"]) == 0:
        raise ValueError(f"{features}: {len(X)} examples leave none for training")
    vocab = Vocab.build([caps[i] for i in parts["train"]], min_freq=min_freq)

    def make(rows):
        rows = np.sort(rows)
        return _encode(vocab, X[rows], [caps[i] for i in rows], source=captions) if len(rows) else None
    return CaptionData(make(parts["train"]), make(parts["valid"]), make(parts["test"]), vocab)


# ---- the handwritten digits ------------------------------------------------------------------

def load_digits(path=None) -> tuple[np.ndarray, np.ndarray]:
    """(images (1797, 8, 8) float64 in [0, 1], digits (1797,) int64) from ``digits.csv.gz``
    (64 pixel values 0-16 then the digit, one image a line); ``path``: the file or its folder."""
    path = Path(path) if path is not None else find_data("digits")
    if path.is_dir():
        path = path / "digits.csv.gz"
    if not path.is_file():
        raise FileNotFoundError(f"digits file {path} does not exist")
    try:
        text = gzip.decompress(path.read_bytes()).decode("ascii")
    except (OSError, EOFError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a gzip-compressed CSV file ({err})") from None
    rows = []
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        try:
            values = [float(v) for v in line.split(",")]
        except ValueError:
            raise ValueError(f"{path}, line {number}: expected 65 numbers separated by commas") from None
        if len(values) != 65:
            raise ValueError(f"{path}, line {number}: expected 65 values (64 pixels and the digit), got {len(values)}")
        if values[64] not in range(10) or not all(0 <= v <= 16 for v in values[:64]):
            raise ValueError(f"{path}, line {number}: pixels must lie in 0-16 and the digit in 0-9")
        rows.append(values)
    if not rows:
        raise DataError(f"{path} holds no images")
    data = np.asarray(rows)
    return (data[:, :64] / 16.0).reshape(-1, 8, 8), data[:, 64].astype(np.int64)


def compose_digit_captions(images: np.ndarray, digits: np.ndarray, n_train: int = 6000, n_valid: int = 500,
                           n_test: int = 1000, max_digits: int = 4, split=(0.7, 0.1, 0.2),
                           seed: int = 0) -> CaptionData:
    """Composed digit images and their captions (see the module docstring).

    ``split``: the fractions of *source* images given to train / valid / test; each composed
    example draws 1..``max_digits`` (uniformly) distinct source images of its own split only.
    """
    rng = np.random.default_rng(seed)
    n = len(images)
    order = rng.permutation(n)
    fractions = np.asarray(split, dtype=np.float64) / np.sum(split)
    cuts = np.round(np.cumsum(fractions)[:2] * n).astype(int)
    pools = {"train": order[:cuts[0]], "valid": order[cuts[0]:cuts[1]], "test": order[cuts[1]:]}
    h, w = images.shape[1:]
    vocab = Vocab(DIGIT_WORDS)

    def build(pool, count, name):
        if count == 0:
            return None
        if len(pool) < max_digits:
            raise ValueError(f"the {name} split has {len(pool)} source images, fewer than max_digits={max_digits}")
        canvas = np.zeros((count, h, w * max_digits))
        captions, sources = [], []
        for i in range(count):
            k = int(rng.integers(1, max_digits + 1))
            chosen = rng.choice(pool, size=k, replace=False)
            for j, src in enumerate(chosen):
                canvas[i, :, j * w:(j + 1) * w] = images[src]
            captions.append([DIGIT_WORDS[d] for d in digits[chosen]])
            sources.append(chosen.tolist())
        split_ = _encode(vocab, canvas.reshape(count, -1), captions, canvas, source=f"digits ({name})")
        split_.sources = sources
        return split_

    return CaptionData(build(pools["train"], n_train, "train"), build(pools["valid"], n_valid, "valid"),
                       build(pools["test"], n_test, "test"), vocab)
