"""Sequence classification data: labelled sentences (TSV, SST-2) and the split container.

A ``ClassificationData`` holds up to three ``ClassSplit`` (train, valid, test) of one kind:

- ``kind="text"``: each input is a list of word ids from ``vocab`` (built on train only;
  specials ``<pad>`` = 0, ``<unk>`` = 1), read from ``text<TAB>label`` lines;
- ``kind="series"``: each input is a float array (T, D), standardized with the training
  set's per-feature mean and standard deviation (``data/timeseries.py`` builds those).

``labels`` are the class names in id order, from the training split; a valid/test label the
training split does not have is an error naming its file and line. ``split.batches(...)``
yields length-bucketed padded batches ``{"x", "mask", "y", "rows"}`` (see ``data/padding.py``).

TSV files: one example a line, ``text<TAB>label`` (the label is the last column). A first line
whose last field is ``label`` (any case) is a header and is skipped, as in GLUE's files.
Words are the whitespace-separated tokens of the text (``lowercase=True`` lowercases them).
SST-2 by name (``load_sst2``): ``$RNNLAB_DATA/sentiment/sst2-sentences`` (Kim 2014 splits,
``<label> <sentence>`` lines) or ``sst2-glue`` (GLUE's TSV; its test split is unlabelled, so
there the test split is None).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from ..fileio import split_lines
from .corpora import DataError, dataset_folder, read_text
from .padding import cap_lengths, describe_cut, length_buckets, pad_ids, pad_vectors
from .vocab import Vocab

TEXT_SPECIALS = ("<pad>", "<unk>")


@dataclass
class ClassSplit:
    """Examples of one split: ``inputs`` (id lists or (T, D) arrays), ``labels`` (N,) int64,
    the 1-based source line of each example, and the source file's name."""

    inputs: list
    labels: np.ndarray
    lines: list
    source: str = "input"
    texts: list | None = None  # the words of each text example, for reports and predictions

    def __len__(self) -> int:
        return len(self.inputs)

    def lengths(self) -> list[int]:
        return [len(x) for x in self.inputs]

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0) -> Iterator[dict]:
        """Padded batches: ``x`` (B, T) int64 ids or (B, T, D) floats, ``mask`` (B, T) bool,
        ``y`` (B,) int64, ``rows`` (B,) indices into this split."""
        from .. import backend

        for rows in length_buckets(self.lengths(), batch_size, shuffle, seed, epoch):
            x, mask = pad_examples([self.inputs[i] for i in rows])
            yield {"x": x, "mask": mask, "y": backend.xp.asarray(self.labels[rows]), "rows": rows}


def pad_examples(examples: list):
    """Classification inputs of one kind -> (x, mask): id lists as (B, T) int64 ids, (T, D)
    series as (B, T, D) floats (``data/padding.py``)."""
    if examples and isinstance(examples[0], np.ndarray) and examples[0].ndim == 2:
        return pad_vectors(examples)
    return pad_ids(examples)


@dataclass
class ClassificationData:
    """Train / valid / test splits, class names, and what encodes new inputs."""

    train: ClassSplit
    valid: ClassSplit | None
    test: ClassSplit | None
    labels: list
    kind: str = "text"
    vocab: Vocab | None = None
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    lowercase: bool = False
    notes: list = field(default_factory=list)   # e.g. which lines the length cap cut
    deltas: bool = False                         # series: each feature's first difference appended
    frames_per_step: int = 1                     # series: consecutive frames read as one step (fold_frames)
    series_scale: bool = False                   # series: standardized each on its own (with_series_scale)

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def input_dim(self) -> int | None:
        """Features of one step the model reads: the standardized frame features, times the frames
        folded into a step."""
        return None if self.mean is None else int(self.mean.size) * self.frames_per_step

    @property
    def series_features(self) -> int | None:
        """Features of a raw series to classify: a frame's, without the deltas appended to it."""
        return None if self.mean is None else int(self.mean.size) // (2 if self.deltas else 1) // (
            3 if self.series_scale else 1)

    def encode_text(self, text: str) -> list[int]:
        """A new sentence, raw or tokenized -> word ids (``word_tokenize``; unknown -> ``<unk>``)."""
        words = word_tokenize(text)
        if self.lowercase:
            words = [w.lower() for w in words]
        if not words:
            raise ValueError("the sentence to classify is empty")
        return self.vocab.encode(words)

    def encode_series(self, series: np.ndarray, where: str = "series 1") -> np.ndarray:
        """A new (T, D) series -> what the training series became: standardized on its own with
        its scale as features (if they were), its deltas appended (if they were), standardized with
        the training statistics (NaN -> 0, the mean), its frames folded into steps as theirs;
        ``where`` names it in errors."""
        from .timeseries import apply_standardization, fold_frames, with_deltas, with_series_scale

        series = np.asarray(series, dtype=np.float64)
        if self.deltas or self.series_scale:
            features = self.series_features
            if series.ndim != 2 or series.shape[1] != features:
                raise ValueError(f"expected a series of shape (time, {features}), got {series.shape}")
        if self.series_scale:
            series = with_series_scale([series])[0]
        if self.deltas:
            series = with_deltas([series], [where])[0]
        return fold_frames(apply_standardization([series], self.mean, self.std, [where]), self.frames_per_step)[0]


_CLITIC = re.compile(r"(?i)(\w)(n't|'s|'re|'ve|'ll|'d|'m)\b")
_PUNCT = re.compile(r"(\.\.\.|[^\w\s'-])")


def word_tokenize(text: str) -> list[str]:
    """Raw text -> tokens the way SST-2 (Penn Treebank style) writes them: punctuation apart,
    clitics split ("don't" -> "do n't", "film's" -> "film 's"). Already tokenized text stays."""
    return _PUNCT.sub(r" \1 ", _CLITIC.sub(r"\1 \2", text)).split()


# ---- TSV ------------------------------------------------------------------------------------

def read_labeled_tsv(path, lowercase: bool = False) -> tuple[list, list, list]:
    """``text<TAB>label`` lines -> (token lists, label strings, 1-based line numbers).

    Errors (ValueError naming the file and line): a line without a tab (no label column), an
    empty label or text, a label holding spaces (the columns swapped?). Blank lines are skipped.
    """
    path = Path(path)
    lines = split_lines(read_text(path))
    texts, labels, numbers = [], [], []
    start = 0
    if lines and lines[0].rsplit("\t", 1)[-1].strip().lower() == "label":
        start = 1  # a header row such as GLUE's "sentence<TAB>label"
    elif lines and "\t" in lines[0] and lines[0].split("\t")[0].strip().lower() in ("index", "id") \
            and "label" not in lines[0].lower():
        raise ValueError(f"{path}, line 1: the header {lines[0].strip()!r} names no label column: "
                         f"this looks like an unlabelled file (e.g. GLUE's test.tsv)")
    for number, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise ValueError(f"{path}, line {number}: no label column: expected text<TAB>label, got "
                             f"{_clip(line)!r}")
        text, label = line.rsplit("\t", 1)
        label = label.strip()
        if not label:
            raise ValueError(f"{path}, line {number}: the label column is empty")
        if any(c.isspace() for c in label):
            raise ValueError(f"{path}, line {number}: {_clip(label)!r} is not a label (labels are one "
                             f"word; is the column order text<TAB>label?)")
        words = text.split()
        if not words:
            raise ValueError(f"{path}, line {number}: the text column is empty")
        texts.append([w.lower() for w in words] if lowercase else words)
        labels.append(label)
        numbers.append(number)
    if not texts:
        raise DataError(f"{path} holds no examples")
    return texts, labels, numbers


def read_texts(path) -> tuple[list[str], list[int]]:
    """Sentences to classify, one a line (blank lines skipped): (texts, 1-based line numbers).
    A line with a tab is read as ``text<TAB>label`` and its label is ignored; a GLUE-style
    header line (``sentence<TAB>label``) is skipped."""
    return parse_texts(read_text(Path(path)), path)


def parse_texts(content: str, source) -> tuple[list[str], list[int]]:
    """``read_texts`` of text already read (e.g. stdin); ``source`` names it in errors."""
    texts, numbers = [], []
    for number, line in enumerate(split_lines(content.lstrip("\ufeff")), start=1):
        text = line.rsplit("\t", 1)[0] if "\t" in line else line
        if number == 1 and "\t" in line and line.rsplit("\t", 1)[-1].strip().lower() == "label":
            continue
        if text.strip():
            texts.append(text.strip())
            numbers.append(number)
    if not texts:
        raise DataError(f"{source} holds no sentences")
    return texts, numbers


def read_sst2_sentences(path, lowercase: bool = False) -> tuple[list, list, list]:
    """Kim's ``stsa.binary.*`` files: ``<label> <sentence>`` lines, label 0 or 1."""
    path = Path(path)
    texts, labels, numbers = [], [], []
    for number, line in enumerate(split_lines(read_text(path)), start=1):
        if not line.strip():
            continue
        label, _, text = line.strip().partition(" ")
        if label not in ("0", "1") or not text.strip():
            raise ValueError(f"{path}, line {number}: expected '<0 or 1> <sentence>', got {_clip(line)!r}")
        words = text.split()
        texts.append([w.lower() for w in words] if lowercase else words)
        labels.append(label)
        numbers.append(number)
    return texts, labels, numbers


def _clip(text: str, n: int = 60) -> str:
    return text if len(text) <= n else text[:n] + "..."


def sorted_labels(labels: Sequence[str]) -> list[str]:
    """Distinct labels, numerically when all are integers (2 before 10), else alphabetically."""
    distinct = set(labels)
    try:
        return sorted(distinct, key=int)
    except ValueError:
        return sorted(distinct)


def label_ids(labels: Sequence[str], names: Sequence[str], source, lines) -> np.ndarray:
    """Label strings -> ids in ``names``; an unknown one is an error naming the file and line."""
    index = {name: i for i, name in enumerate(names)}
    out = np.empty(len(labels), dtype=np.int64)
    for k, label in enumerate(labels):
        if label not in index:
            raise ValueError(f"{source}, line {lines[k]}: label {label!r} does not occur in the training "
                             f"data (labels: {', '.join(map(str, names))})")
        out[k] = index[label]
    return out


def split_off(split: ClassSplit, fraction: float, seed: int = 0) -> tuple[ClassSplit, ClassSplit]:
    """(rest, held out): a seeded random ``fraction`` of ``split`` held out (e.g. as valid)."""
    n = len(split)
    n_out = int(round(n * fraction))
    if not 0 < n_out < n:
        raise ValueError(f"cannot hold out {fraction:.0%} of {n} examples of {split.source}")
    order = np.random.default_rng(seed).permutation(n)
    held, kept = np.sort(order[:n_out]), np.sort(order[n_out:])

    def take(rows):
        return ClassSplit([split.inputs[i] for i in rows], split.labels[rows], [split.lines[i] for i in rows],
                          split.source, None if split.texts is None else [split.texts[i] for i in rows])
    return take(kept), take(held)


def make_text_data(train, valid=None, test=None, min_freq: int = 1, max_len: int | None = None,
                   lowercase: bool = False, valid_fraction: float = 0.0, seed: int = 0) -> ClassificationData:
    """Build the splits from (texts, labels, lines, source) tuples; vocabulary and labels from train."""
    texts, labels, lines, source = train
    vocab = Vocab.build(texts, specials=TEXT_SPECIALS, min_freq=min_freq)
    names = sorted_labels(labels)
    notes = []

    def make(part):
        if part is None:
            return None
        p_texts, p_labels, p_lines, p_source = part
        ids = [vocab.encode(t) for t in p_texts]
        note = describe_cut(cap_lengths(ids, max_len, p_lines, str(p_source)), str(p_source), max_len or 0)
        if note:
            notes.append(note)
        return ClassSplit(ids, label_ids(p_labels, names, p_source, p_lines), list(p_lines), str(p_source),
                          list(p_texts))

    train_split = make(train)
    valid_split = make(valid)
    if valid_split is None and valid_fraction > 0:
        train_split, valid_split = split_off(train_split, valid_fraction, seed)
    return ClassificationData(train_split, valid_split, make(test), names, "text", vocab=vocab,
                              lowercase=lowercase, notes=notes)


def load_tsv_classification(train, valid=None, test=None, min_freq: int = 1, max_len: int | None = None,
                            lowercase: bool = False, valid_fraction: float = 0.0,
                            seed: int = 0) -> ClassificationData:
    """Any ``text<TAB>label`` files (binary or multi-class). Without a valid file and with
    ``valid_fraction`` > 0, that fraction of train (seeded) is held out as valid."""
    def read(path):
        return None if path is None else (*read_labeled_tsv(path, lowercase), str(path))
    return make_text_data(read(train), read(valid), read(test), min_freq, max_len, lowercase,
                          valid_fraction, seed)


SST2_VARIANTS = {
    "sentences": ("sentiment/sst2-sentences", {"train": "stsa.binary.train", "valid": "stsa.binary.dev",
                                                "test": "stsa.binary.test"}),
    "glue": ("sentiment/sst2-glue", {"train": "train.tsv", "valid": "dev.tsv", "test": None}),
}


def find_data(relpath: str, path=None) -> Path:
    """A dataset folder: ``path`` itself when given, else ``$RNNLAB_DATA/relpath``, else the
    cache's copy, downloaded on first use with a checksum (``corpora.dataset_folder``)."""
    return dataset_folder(relpath, path)


def load_sst2(variant: str = "sentences", path=None, min_freq: int = 1, max_len: int | None = None,
              lowercase: bool = False) -> ClassificationData:
    """SST-2 (binary sentiment, labels "0" negative / "1" positive) from ``$RNNLAB_DATA``.

    ``variant="sentences"``: 6,920 / 872 / 1,821 labelled sentences (Kim 2014).
    ``variant="glue"``: GLUE's 67,349 training phrases and 872 dev sentences; no test labels.
    """
    if variant not in SST2_VARIANTS:
        raise ValueError(f"unknown SST-2 variant {variant!r}: use one of {sorted(SST2_VARIANTS)}")
    relpath, files = SST2_VARIANTS[variant]
    folder = find_data(relpath, path)
    reader = read_sst2_sentences if variant == "sentences" else read_labeled_tsv

    def read(part):
        name = files[part]
        if name is None:
            return None
        file = folder / name
        if not file.is_file():
            raise FileNotFoundError(f"SST-2 ({variant}): {file} does not exist")
        return (*reader(file, lowercase), str(file))
    return make_text_data(read("train"), read("valid"), read("test"), min_freq, max_len, lowercase)
