"""Vocabularies: tokens <-> integer ids, with special tokens first.

``Vocab.build(token_lists)`` counts tokens and orders them by frequency (ties by first
appearance), after the specials. Unknown tokens map to ``<unk>`` when the vocabulary has one,
and raise ``KeyError`` naming the token when it has none. Default specials, in id order:
``<pad>`` (0, so zero-padding is padding), ``<unk>``, ``<bos>``, ``<eos>``.
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Iterable, Sequence

DEFAULT_SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")


class Vocab:
    def __init__(self, tokens: Iterable[str] = (), specials: Sequence[str] = DEFAULT_SPECIALS):
        self.specials = tuple(specials)
        self.itos: list[str] = []
        self.stoi: dict[str, int] = {}
        for token in (*self.specials, *tokens):
            if token not in self.stoi:
                self.stoi[token] = len(self.itos)
                self.itos.append(token)

    @classmethod
    def build(cls, sequences: Iterable[Iterable[str]], specials: Sequence[str] = DEFAULT_SPECIALS,
              min_freq: int = 1, max_size: int | None = None) -> "Vocab":
        counts: Counter = Counter()
        for seq in sequences:
            counts.update(seq)
        ordered = [t for t, c in counts.most_common() if c >= min_freq and t not in specials]
        if max_size is not None:
            ordered = ordered[:max(0, max_size - len(specials))]
        return cls(ordered, specials)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def _special_id(self, token):
        return self.stoi.get(token)

    pad_id = property(lambda self: self._special_id("<pad>"))
    unk_id = property(lambda self: self._special_id("<unk>"))
    bos_id = property(lambda self: self._special_id("<bos>"))
    eos_id = property(lambda self: self._special_id("<eos>"))

    def lookup(self, token: str) -> int:
        idx = self.stoi.get(token)
        if idx is not None:
            return idx
        if self.unk_id is None:
            raise KeyError(f"token {token!r} is not in the vocabulary (size {len(self)}) and it has no <unk>")
        return self.unk_id

    def encode(self, tokens: Iterable[str]) -> list[int]:
        return [self.lookup(t) for t in tokens]

    def decode(self, ids: Iterable[int], strip_specials: bool = True) -> list[str]:
        specials = set(self.specials) if strip_specials else set()
        out = []
        for i in ids:
            token = self.itos[int(i)]
            if token not in specials:
                out.append(token)
        return out

    def to_json(self) -> dict:
        return {"specials": list(self.specials), "itos": self.itos}

    @classmethod
    def from_json(cls, data: dict) -> "Vocab":
        """The vocabulary of ``to_json``'s dict; ValueError for anything else (checked first)."""
        if not (isinstance(data, dict) and isinstance(data.get("specials"), list)
                and isinstance(data.get("itos"), list)
                and all(isinstance(t, str) for t in (*data["specials"], *data["itos"]))):
            raise ValueError("vocabulary JSON must be {\"specials\": [strings], \"itos\": [strings]}")
        specials = data["specials"]
        vocab = cls(data["itos"][len(specials):], specials)
        if vocab.itos != list(data["itos"]):
            raise ValueError("vocabulary JSON is inconsistent: duplicate tokens or specials out of place")
        return vocab

    def save(self, path) -> None:
        """Write the vocabulary as JSON, atomically (``fileio.atomic_write_text``)."""
        from ..fileio import atomic_write_text

        atomic_write_text(path, json.dumps(self.to_json(), ensure_ascii=False))

    @classmethod
    def load(cls, path) -> "Vocab":
        """The vocabulary saved in ``path``; errors (bad JSON, bad structure) name the file."""
        try:
            with open(path, encoding="utf-8") as f:
                return cls.from_json(json.load(f))
        except (ValueError, RecursionError) as err:  # JSONDecodeError, UnicodeDecodeError, from_json's
            raise ValueError(f"{path}: not a valid rnnlab vocabulary: {err}") from None
