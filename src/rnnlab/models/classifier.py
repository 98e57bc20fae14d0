"""Many-to-one: a sequence classifier, for sentences (word ids) or series (float vectors).

    words:   ids (B, T), 0 = padding -> Embedding (V, E) -> x (B, T, E), mask = ids != 0
    series:  x (B, T, D) floats, mask (B, T) given (True at real steps)
    x -> [Dropout(input_dropout)] -> RecurrentStack (stacked, optionally bidirectional; masked steps keep the state)
      -> y (B, T, H')  -> SequencePooling (last / mean / max over real steps) -> (B, H')
      -> [Dropout] -> Dense(classes) -> logits (B, C)

``dropout`` acts between stacked layers and before the head; ``input_dropout`` on the encoder's
inputs (the word embeddings: the regulariser that keeps a sentence model from memorising its
words). Give ``vocab_size`` for words or ``input_dim`` for vectors (exactly one). Trained with
softmax cross-entropy on the logits; ``predict_proba`` gives the class probabilities.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .. import validate
from ..layers import Dense, Dropout, Embedding
from ..layers.core import softmax
from ..layers.base import ShapeError
from .base import Model, eval_mode
from .stack import POOLINGS, RecurrentStack, SequencePooling, part_seeds


class SequenceClassifier(Model):
    """See the module docstring. ``forward(x, mask=None) -> logits (B, classes)``."""

    def __init__(self, classes: int, vocab_size: int | None = None, input_dim: int | None = None,
                 emb: int = 64, hidden: int = 64, layers: int = 1, cell: str = "lstm",
                 bidirectional: bool = False, pooling: str = "last", dropout: float = 0.0,
                 input_dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        if (vocab_size is None) == (input_dim is None):
            raise ValueError(f"{self.describe()}: give vocab_size (word ids in) or input_dim (vectors in), "
                             f"exactly one")
        self.classes = validate.integer(owner, "classes", classes, low=2)
        self.vocab_size = validate.optional_positive_int(owner, "vocab_size", vocab_size)
        self.input_dim = validate.optional_positive_int(owner, "input_dim", input_dim)
        self.emb, self.hidden = validate.positive_int(owner, "emb", emb), validate.positive_int(owner, "hidden", hidden)
        self.layers, self.cell = validate.positive_int(owner, "layers", layers), validate.cell(owner, "cell", cell)
        self.bidirectional = validate.flag(owner, "bidirectional", bidirectional)
        self.pooling = validate.choice(owner, "pooling", pooling, POOLINGS)
        self.dropout = validate.rate(owner, "dropout", dropout)
        self.input_dropout = validate.rate(owner, "input_dropout", input_dropout)
        seeds = part_seeds(self.seed, 5)   # prefix-stable: seeds[:4] are those drawn before input_dropout
        self.embedding = None
        if vocab_size is not None:
            self.embedding = Embedding(int(vocab_size), self.emb, mask_zero=True, seed=seeds[0])
            self.embedding.build((None,))
        width = self.emb if vocab_size is not None else int(input_dim)
        self.input_drop = Dropout(self.input_dropout, seed=seeds[4]) if self.input_dropout > 0 else None
        if self.input_drop is not None:
            self.input_drop.build((None, None, width))
        self.encoder = RecurrentStack(self.hidden, self.layers, cell, self.bidirectional, self.dropout,
                                      seed=seeds[1])
        self.encoder.build((None, width))
        self.cell = self.encoder.cell
        self.pool = SequencePooling(pooling, bidirectional=self.bidirectional)
        self.pool.build((None, self.encoder.output_units))
        self.drop = Dropout(self.dropout, seed=seeds[2]) if self.dropout > 0 else None
        self.head = Dense(self.classes, seed=seeds[3])
        self.head.build((self.encoder.output_units,))
        parts = [self.embedding, self.input_drop, self.encoder, self.pool, self.drop, self.head]
        self.sublayers += [p for p in parts if p is not None]
        self.input_shape, self.built = (None,) if vocab_size is not None else (None, int(input_dim)), True

    def forward(self, x, mask=None):
        xp = backend.xp
        if self.embedding is not None:
            if x.ndim != 2 or x.dtype.kind not in "iu":
                raise ShapeError(f"{self.describe()}: expected word ids of shape (batch, time), got "
                                 f"{tuple(x.shape)} {x.dtype}")
            mask = self.embedding.compute_mask(x) if mask is None else mask
            h = self.embedding.forward(x)
        else:
            if x.ndim != 3 or x.shape[-1] != self.input_dim:
                raise ShapeError(f"{self.describe()}: expected vectors of shape (batch, time, {self.input_dim}), "
                                 f"got {tuple(x.shape)}")
            h = x
        if mask is None:
            mask = xp.ones(x.shape[:2], dtype=bool)
        if self.input_drop is not None:
            h = self.input_drop.forward(h)
        y = self.encoder.forward(h, mask=mask)
        pooled = self.pool.forward(y, mask=mask)
        if self.drop is not None:
            pooled = self.drop.forward(pooled)
        return self.head.forward(pooled)

    def backward(self, dlogits):
        d = self.head.backward(dlogits)
        if self.drop is not None:
            d = self.drop.backward(d)
        dx = self.encoder.backward(self.pool.backward(d))
        if self.input_drop is not None:
            dx = self.input_drop.backward(dx)
        if self.embedding is not None:
            self.embedding.backward(dx)
            return None
        return dx

    def predict_proba(self, x, mask=None) -> np.ndarray:
        """Class probabilities (B, C) on the host, in eval mode (the mode is restored after)."""
        with eval_mode(self):
            return backend.to_numpy(softmax(self.forward(x, mask)))

    def compute_output_shape(self, input_shape):
        return (self.classes,)

    def get_config(self) -> dict:
        return {**super().get_config(), "classes": self.classes, "vocab_size": self.vocab_size,
                "input_dim": self.input_dim, "emb": self.emb, "hidden": self.hidden, "layers": self.layers,
                "cell": self.cell, "bidirectional": self.bidirectional, "pooling": self.pooling,
                "dropout": self.dropout, "input_dropout": self.input_dropout}
