"""Many-to-many, one output per step: a sequence tagger (part-of-speech tagging).

Each word is represented by its embedding and by a character-level RNN over its spelling, so
a word never seen in training is still tagged from its shape (suffixes, capitals, digits):

    words (B, T) ids, 0 = padding             chars (B, T, W) ids, 0 = padding
    e_w = Embedding(words)  (B, T, E)         per real word: c = BiRNN_char(Embedding(chars))
                                                             (final states of both directions)
    x_t = [e_w,t ; c_t]  (B, T, E + C) -> [Dropout] -> RecurrentStack (BiLSTM, or one way)
        -> [Dropout] -> Dense(tags) -> logits (B, T, K)

The loss is the masked softmax cross-entropy over real words (the trainer passes ``mask``).
The character RNN runs only over the real words of the batch (gathered, then scattered back),
trimmed to the longest of them.

**Streaming** (``bidirectional=False``): nothing at step t depends on a later word, so the
tagger can tag a sentence as it arrives: ``state = tagger.begin_stream()``, then for each word
``logits, state = tagger.step(word_ids (B,), char_ids (B, W), state)``. The recurrent state is
carried from step to step: the logits equal, to rounding, those of ``forward`` over the whole
sentence, so the tags are the same (a test checks it).
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .. import validate
from ..layers import Bidirectional, Dense, Dropout, Embedding, layer_class
from ..layers.base import ShapeError
from .base import Model, eval_mode
from .stack import RecurrentStack, part_seeds


class Tagger(Model):
    """See the module docstring. ``forward(words, chars, mask=None) -> logits (B, T, tags)``."""

    def __init__(self, vocab_size: int, char_vocab_size: int, tags: int, emb: int = 64, char_emb: int = 24,
                 char_hidden: int = 32, hidden: int = 64, layers: int = 1, cell: str = "lstm",
                 bidirectional: bool = True, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.vocab_size, self.char_vocab_size, self.tags, self.emb, self.char_emb, self.char_hidden, \
            self.hidden, self.layers = (validate.positive_int(owner, arg, value) for arg, value in (
                ("vocab_size", vocab_size), ("char_vocab_size", char_vocab_size), ("tags", tags), ("emb", emb),
                ("char_emb", char_emb), ("char_hidden", char_hidden), ("hidden", hidden), ("layers", layers)))
        cell = validate.cell(owner, "cell", cell)
        self.bidirectional = validate.flag(owner, "bidirectional", bidirectional)
        self.dropout = validate.rate(owner, "dropout", dropout)
        seeds = part_seeds(self.seed, 7)
        self.word_embedding = Embedding(self.vocab_size, self.emb, mask_zero=True, seed=seeds[0])
        self.char_embedding = Embedding(self.char_vocab_size, self.char_emb, mask_zero=True, seed=seeds[1])
        self.word_embedding.build((None,))
        self.char_embedding.build((None,))
        self.encoder = RecurrentStack(self.hidden, self.layers, cell, self.bidirectional, self.dropout, seed=seeds[2])
        self.cell = self.encoder.cell
        # the spelling is read both ways whatever the sentence encoder does: a word is whole when it arrives
        self.char_rnn = Bidirectional(layer_class(self.cell)(self.char_hidden, seed=seeds[3]))
        self.char_rnn.build((None, self.char_emb))
        self.encoder.build((None, self.emb + 2 * self.char_hidden))
        self.drops = [Dropout(self.dropout, seed=seeds[4 + i]) for i in range(2)] if self.dropout > 0 else []
        for drop, width in zip(self.drops, (self.emb + 2 * self.char_hidden, self.encoder.output_units)):
            drop.build((None, width))
        self.head = Dense(self.tags, seed=seeds[6])
        self.head.build((None, self.encoder.output_units))
        self.sublayers += [self.word_embedding, self.char_embedding, self.char_rnn, self.encoder, *self.drops,
                           self.head]
        self.input_shape, self.built = (None,), True

    # ---- forward / backward -------------------------------------------------------------------
    def _char_features(self, chars, mask):
        """(B, T, W) char ids -> (B, T, 2 C): the char RNN's final states at real words, 0 elsewhere."""
        xp = backend.xp
        B, T, W = chars.shape
        real = xp.flatnonzero(mask.reshape(-1))
        word_chars = chars.reshape(B * T, W)[real]
        char_mask = word_chars != 0
        width = max(int(char_mask.sum(axis=1).max()) if real.size else 1, 1)
        word_chars, char_mask = word_chars[:, :width], char_mask[:, :width]
        features = xp.zeros((B * T, 2 * self.char_hidden), dtype=self.head.kernel.dtype)
        if real.size:
            features[real] = self.char_rnn.forward(self.char_embedding.forward(word_chars), mask=char_mask)
        self._char_cache = (real, B, T)
        return features.reshape(B, T, -1)

    def forward(self, words, chars, mask=None, initial_state=None):
        xp = backend.xp
        if words.ndim != 2 or chars.ndim != 3 or tuple(chars.shape[:2]) != tuple(words.shape):
            raise ShapeError(f"{self.describe()}: expected words (batch, time) and chars (batch, time, "
                             f"letters), got {tuple(words.shape)} and {tuple(chars.shape)}")
        if mask is None:
            mask = self.word_embedding.compute_mask(words)
        mask = xp.asarray(mask).astype(bool)
        x = xp.concatenate([self.word_embedding.forward(words), self._char_features(chars, mask)], axis=-1)
        if self.drops:
            x = self.drops[0].forward(x)
        y = self.encoder.forward(x, mask=mask, initial_state=initial_state)
        if self.drops:
            y = self.drops[1].forward(y)
        return self.head.forward(y)

    def backward(self, dlogits):
        dy = self.head.backward(dlogits)
        if self.drops:
            dy = self.drops[1].backward(dy)
        dx = self.encoder.backward(dy)
        if self.drops:
            dx = self.drops[0].backward(dx)
        self.word_embedding.backward(dx[..., :self.emb])
        real, B, T = self._char_cache
        dchars = dx[..., self.emb:].reshape(B * T, -1)[real]
        if real.size:
            self.char_embedding.backward(self.char_rnn.backward(backend.xp.ascontiguousarray(dchars)))
        else:
            for g in self.char_embedding.grads + self.char_rnn.grads:
                g[...] = 0
        return None

    def predict(self, words, chars, mask=None) -> np.ndarray:
        """Tag ids (B, T) on the host, in eval mode (the mode is restored after)."""
        with eval_mode(self):
            return backend.to_numpy(self.forward(words, chars, mask).argmax(axis=-1))

    # ---- streaming ----------------------------------------------------------------------------
    def begin_stream(self):
        """The state before the first word (zeros): pass it to the first ``step``."""
        if self.bidirectional:
            raise ValueError(f"{self.describe()}: a bidirectional tagger reads the whole sentence before "
                             f"tagging; streaming needs bidirectional=False")
        return None

    def step(self, words, chars, state=None):
        """One word per row: words (B,), chars (B, W) -> (logits (B, tags), the next state).

        Eval mode (no dropout); the mode is restored after. Exact to rounding with ``forward``
        over the whole sentence (the recurrent state carries everything the past words left).
        """
        self.begin_stream()
        xp = backend.xp
        words, chars = xp.asarray(words), xp.asarray(chars)
        if words.ndim != 1 or chars.ndim != 2 or chars.shape[0] != words.shape[0]:
            raise ShapeError(f"{self.describe()}: step takes words (batch,) and chars (batch, letters), got "
                             f"{tuple(words.shape)} and {tuple(chars.shape)}")
        with eval_mode(self):
            logits = self.forward(words[:, None], chars[:, None, :], mask=xp.ones((words.shape[0], 1), dtype=bool),
                                  initial_state=state)
        return logits[:, 0], [[s.copy() for s in layer] for layer in self.encoder.final_states]

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.tags)

    def get_config(self) -> dict:
        return {**super().get_config(), "vocab_size": self.vocab_size, "char_vocab_size": self.char_vocab_size,
                "tags": self.tags, "emb": self.emb, "char_emb": self.char_emb, "char_hidden": self.char_hidden,
                "hidden": self.hidden, "layers": self.layers, "cell": self.cell,
                "bidirectional": self.bidirectional, "dropout": self.dropout}
