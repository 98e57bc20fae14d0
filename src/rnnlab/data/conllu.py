"""Part-of-speech tagging data: CoNLL-U files (Universal Dependencies), UPOS tags.

A CoNLL-U file holds sentences separated by blank lines; ``#`` lines are comments; every other
line is a token with 10 tab-separated fields, ``ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS
MISC``. Multiword-token lines (ID ``1-2``, e.g. "don't" over "do" + "n't") and empty nodes
(ID ``3.1``) are skipped: the words tagged are the syntactic words, IDs 1, 2, 3, ...

``read_conllu(path)`` -> list of ``Sentence(words, tags, line)``; a broken line (wrong field
count, an ID out of sequence, an empty form or UPOS) is a ValueError naming the file and line.

``load_tagging(train, valid, test)`` builds a ``TaggingData``: a word vocabulary from the
training words seen at least ``min_freq`` times (rarer ones read as ``<unk>``, so the model
learns what to do with an unknown word, and the character RNN carries its spelling), a
character vocabulary (specials ``<pad>`` = 0, ``<unk>`` = 1; characters keep their case),
the tag list, and per split the word ids, character ids, tag ids and an ``unseen`` flag per
word (its form does not occur in the training data: the "unknown word" accuracy).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..fileio import split_lines
from .corpora import DataError, read_text
from .labeled import find_data
from .padding import cap_lengths, describe_cut, length_buckets, pad_chars, pad_ids
from .vocab import Vocab

WORD_SPECIALS = ("<pad>", "<unk>")
CHAR_SPECIALS = ("<pad>", "<unk>")


@dataclass
class Sentence:
    words: list
    tags: list
    line: int          # the line of its first token


def read_conllu(path) -> list[Sentence]:
    """The sentences of a CoNLL-U file, words and UPOS tags (see the module docstring)."""
    path = Path(path)
    sentences: list[Sentence] = []
    words, tags, first = [], [], None
    for number, raw in enumerate(split_lines(read_text(path)), start=1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            if words:
                sentences.append(Sentence(words, tags, first))
            words, tags, first = [], [], None
            continue
        if line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 10:
            raise ValueError(f"{path}, line {number}: expected 10 tab-separated fields (CoNLL-U), got "
                             f"{len(fields)}: {line[:50]!r}")
        token_id = fields[0]
        if "-" in token_id or "." in token_id:
            continue  # a multiword token or an empty node: not one of the tagged words
        if not token_id.isdigit():
            raise ValueError(f"{path}, line {number}: the ID field {token_id!r} is not a word number")
        if int(token_id) != len(words) + 1:
            raise ValueError(f"{path}, line {number}: word ID {token_id} out of sequence (expected "
                             f"{len(words) + 1}; a missing blank line between sentences?)")
        form, upos = fields[1], fields[3]
        if not form or upos in ("", "_"):
            raise ValueError(f"{path}, line {number}: the FORM or UPOS field is empty")
        if first is None:
            first = number
        words.append(form)
        tags.append(upos)
    if words:
        sentences.append(Sentence(words, tags, first))
    if not sentences:
        raise DataError(f"{path} holds no sentences")
    return sentences


@dataclass
class TagSplit:
    """One split: per sentence its word ids, per word its character ids, tag ids, unseen flags."""

    words: list            # list[list[int]]
    chars: list            # list[list[list[int]]]
    tags: list             # list[list[int]]
    unseen: list           # list[list[bool]]
    forms: list            # the original words
    lines: list
    source: str = "input"

    def __len__(self) -> int:
        return len(self.words)

    @property
    def num_words(self) -> int:
        return sum(len(s) for s in self.words)

    def batches(self, batch_size: int, shuffle: bool = False, seed: int = 0, epoch: int = 0) -> Iterator[dict]:
        """Padded batches: ``words`` (B, T), ``chars`` (B, T, W), ``tags`` (B, T) (0 at padding),
        ``mask`` (B, T) bool, ``unseen`` (B, T) bool, ``rows``."""
        from .. import backend

        for rows in length_buckets([len(s) for s in self.words], batch_size, shuffle, seed, epoch):
            words, mask = pad_ids([self.words[i] for i in rows])
            tags, _ = pad_ids([self.tags[i] for i in rows])
            unseen, _ = pad_ids([[int(u) for u in self.unseen[i]] for i in rows])
            yield {"words": words, "chars": pad_chars([self.chars[i] for i in rows]), "tags": tags,
                   "mask": mask, "unseen": backend.xp.asarray(unseen).astype(bool), "rows": rows}


@dataclass
class TaggingData:
    train: TagSplit
    valid: TagSplit | None
    test: TagSplit | None
    word_vocab: Vocab
    char_vocab: Vocab
    tags: list
    lowercase: bool = True
    max_word_len: int = 20
    notes: list = field(default_factory=list)

    def encode_words(self, forms) -> tuple[list[int], list[list[int]]]:
        """New words -> (word ids, character ids per word), as the training data was encoded."""
        words = [f.lower() for f in forms] if self.lowercase else list(forms)
        return self.word_vocab.encode(words), [self.char_vocab.encode(list(f[:self.max_word_len]))
                                               for f in forms]


def load_tagging(train, valid=None, test=None, min_freq: int = 2, lowercase: bool = True,
                 max_len: int | None = None, max_word_len: int = 20) -> TaggingData:
    """Read CoNLL-U files and encode them (see the module docstring). Words longer than
    ``max_word_len`` characters keep their first ``max_word_len`` for the character RNN;
    sentences longer than ``max_len`` words are cut (reported in ``notes``)."""
    train_sents = read_conllu(train)
    norm = (lambda w: w.lower()) if lowercase else (lambda w: w)
    word_vocab = Vocab.build([[norm(w) for w in s.words] for s in train_sents], specials=WORD_SPECIALS,
                             min_freq=min_freq)
    char_vocab = Vocab.build([list(w) for s in train_sents for w in s.words], specials=CHAR_SPECIALS)
    tag_names = sorted({t for s in train_sents for t in s.tags})
    tag_index = {t: i for i, t in enumerate(tag_names)}
    seen_forms = {norm(w) for s in train_sents for w in s.words}
    notes = []

    def encode(sentences, source):
        if sentences is None:
            return None
        forms = [list(s.words) for s in sentences]
        tags = []
        for s in sentences:
            for k, tag in enumerate(s.tags):
                if tag not in tag_index:
                    raise ValueError(f"{source}: the sentence at line {s.line} has tag {tag!r}, which the "
                                     f"training data does not have (tags: {' '.join(tag_names)})")
            tags.append([tag_index[t] for t in s.tags])
        lines = [s.line for s in sentences]
        note = describe_cut(cap_lengths(forms, max_len, lines, str(source)), str(source), max_len or 0)
        if note:
            notes.append(note)
        tags = [t[:len(f)] for t, f in zip(tags, forms)]
        words = [word_vocab.encode([norm(w) for w in f]) for f in forms]
        chars = [[char_vocab.encode(list(w[:max_word_len])) for w in f] for f in forms]
        unseen = [[norm(w) not in seen_forms for w in f] for f in forms]
        return TagSplit(words, chars, tags, unseen, forms, lines, str(source))

    return TaggingData(encode(train_sents, train),
                       encode(read_conllu(valid), valid) if valid is not None else None,
                       encode(read_conllu(test), test) if test is not None else None,
                       word_vocab, char_vocab, tag_names, lowercase, max_word_len, notes)


def load_ud_english_ewt(path=None, **kwargs) -> TaggingData:
    """UD English EWT (12,544 / 2,001 / 2,077 sentences) from ``$RNNLAB_DATA/ud-english-ewt`` (else downloaded)."""
    folder = find_data("ud-english-ewt", path)
    return load_tagging(folder / "en_ewt-ud-train.conllu", folder / "en_ewt-ud-dev.conllu",
                        folder / "en_ewt-ud-test.conllu", **kwargs)


def tag_arrays(split: TagSplit):
    """Flat (N_words,) int arrays of a split's gold tags and unseen flags, in sentence order."""
    return (np.fromiter((t for s in split.tags for t in s), dtype=np.int64),
            np.fromiter((u for s in split.unseen for u in s), dtype=bool))
