"""The recurrent language model (RNNLM): predict every next token of a text.

    ids (B, T) -> Embedding -> [Dropout] -> RNN_1 -> [Dropout] -> ... -> RNN_N -> [Dropout]
               -> Dense to the vocabulary -> logits (B, T, V)

trained with softmax cross-entropy against the ids shifted by one step.

**Carried state (truncated BPTT).** The model keeps the last hidden (and cell) state of every
recurrent layer after each ``forward`` and starts the next ``forward`` from it, so window k+1
of a text continues where window k stopped. ``backward`` does not propagate into that initial
state: the gradient is truncated at the window boundary. ``reset_states()`` zeroes the state
(start of an epoch, of an evaluation, of a generated text); ``states`` / ``set_states`` read
and restore it (checkpoints taken in the middle of an epoch).

**Dropout** (Zaremba et al. 2014): on the non-recurrent connections only, i.e. on the
embeddings, between stacked layers and before the output layer; with ``variational=True`` each
mask is drawn once per sequence and shared by all its time steps (Gal & Ghahramani 2016, on
the same connections; the recurrent connections are not dropped).

**Weight tying** (Press & Wolf 2017; Inan et al. 2017): the output layer reuses the embedding
matrix E (V, E): logits = h E^T + b. It needs emb == hidden. The gradient of E is then the sum
of the embedding's gradient and the output layer's, dE += dlogits^T h.

**Initialization**: with ``init_scale=s`` every weight (embeddings, kernels, recurrent kernels,
biases, output layer) is drawn from U(-s, s), as in Zaremba et al.; ``init_scale=None`` keeps
the Keras defaults of each layer.

Shapes: B batch, T time, V vocabulary, E embedding size, H hidden units, N layers.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from .. import validate
from ..layers import core as L
from ..layers import kinds
from ..layers.base import ShapeError
from ..checkpoint import dropout_rng_state, set_dropout_rng_state
from .base import Model, eval_mode
from .stack import part_seeds, recurrent_layers, stack_backward, stack_forward

PRIME_WINDOW = 256   # prime tokens a generate() forward takes at once

class LanguageModel(Model):
    """Embedding -> ``layers`` stacked recurrent layers with carried state -> Dense(vocab_size).

    ``forward(ids)``: ids (B, T) int -> logits (B, T, V), starting from the carried state.
    Parts: ``embedding``, ``rnns`` (one per layer), ``drops``, and ``output``, the Dense to the
    vocabulary (None with ``tie_weights``: then the embedding matrix and ``output_bias``).
    ``backward(dlogits)``: fills ``grads`` (truncated at the window start); returns None.
    """

    def __init__(self, vocab_size: int, emb: int | None = 200, hidden: int = 200, layers: int = 2,
                 cell: str = "lstm", dropout: float = 0.0, variational: bool = False,
                 tie_weights: bool = False, init_scale: float | None = 0.1, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        vocab_size = validate.positive_int(owner, "vocab_size", vocab_size)
        hidden = validate.positive_int(owner, "hidden", hidden)
        emb = hidden if emb is None else validate.positive_int(owner, "emb", emb)
        layers = validate.positive_int(owner, "layers", layers)
        dropout = validate.rate(owner, "dropout", dropout)
        cell = validate.cell(owner, "cell", cell)
        variational = validate.flag(owner, "variational", variational)
        tie_weights = validate.flag(owner, "tie_weights", tie_weights)
        if init_scale is not None:
            init_scale = validate.finite_float(owner, "init_scale", init_scale, low=0.0, low_open=True)
        if tie_weights and emb != hidden:
            raise ValueError(f"LanguageModel: tie_weights needs the embedding size to equal the hidden "
                             f"size (the output layer reuses the (vocab, emb) embedding matrix as its "
                             f"(hidden, vocab) kernel), got emb={emb}, hidden={hidden}")
        self.vocab_size, self.emb, self.hidden, self.layers = int(vocab_size), int(emb), int(hidden), int(layers)
        cell = kinds.cell_kind(cell)   # "lstm", "gru" or "rnn" (ValueError naming them otherwise)
        self.cell, self.dropout, self.variational = cell, float(dropout), bool(variational)
        self.tie_weights, self.init_scale = bool(tie_weights), init_scale

        # One seed per part, drawn from the model's seed: parts of equal shape must not start equal.
        seeds = part_seeds(self.seed, 2 * self.layers + 4)
        init = f"uniform:{init_scale}" if init_scale is not None else None
        winit = {} if init is None else {"kernel_initializer": init, "bias_initializer": init}
        rinit = {} if init is None else {**winit, "recurrent_initializer": init}
        if init is not None and cell == "lstm":
            rinit["unit_forget_bias"] = False  # the bias is U(-s, s) too, as in the paper

        if self.tie_weights:
            # the output layer's bias; its kernel is the embedding matrix (transposed)
            self.output_bias = self.add_weight("output_bias", (self.vocab_size,), init or "zeros",
                                               rng=np.random.default_rng(seeds[-1]))
        self.embedding = L.Embedding(self.vocab_size, self.emb, seed=seeds[0],
                                     **({"embeddings_initializer": init} if init else {}))
        self.embedding.build((None,))
        self.rnns = recurrent_layers(cell, self.hidden, seeds[1:1 + self.layers], input_dim=self.emb, **rinit)
        noise_shape = (None, 1, None) if self.variational else None
        self.drops = [L.Dropout(self.dropout, noise_shape=noise_shape, seed=seeds[1 + self.layers + i])
                      for i in range(self.layers + 1)] if self.dropout > 0 else []
        self.output = None
        if not self.tie_weights:
            self.output = L.Dense(self.vocab_size, seed=seeds[-2], **winit)
            self.output.build((None, self.hidden))
        self.sublayers += [self.embedding, *self.rnns, *self.drops] + ([self.output] if self.output else [])
        self.input_shape, self.built = (None,), True
        self._states = None  # per layer: list of state arrays (LSTM: [h, c]), each (B, H)

    # ---- carried state ------------------------------------------------------------------------
    def reset_states(self) -> None:
        """Forget the carried state: the next ``forward`` starts from zeros."""
        self._states = None

    @property
    def states(self):
        """The carried state: one list per layer of (B, H) arrays (LSTM: [h, c]), or None."""
        return self._states

    def set_states(self, states) -> None:
        """Restore a carried state (as ``states`` gave it; None resets)."""
        xp = backend.xp
        self._states = None if states is None else [[xp.asarray(s) for s in layer] for layer in states]

    def rng_state(self):
        """The dropout generators' states (JSON-serialisable; NumPy backend), for checkpoints."""
        return dropout_rng_state(self)

    def set_rng_state(self, states) -> None:
        set_dropout_rng_state(self, states)

    # ---- forward / backward -----------------------------------------------------------------
    @property
    def _drop_before(self) -> list:
        """Each recurrent layer's dropout on its input (the first's: on the embeddings)."""
        return self.drops[:self.layers] if self.drops else [None] * self.layers

    def _drop(self, i, x):
        return self.drops[i].forward(x) if self.drops else x

    def _drop_back(self, i, dx):
        return self.drops[i].backward(dx) if self.drops else dx

    def forward(self, ids, **kwargs):
        if ids.ndim != 2:
            raise ShapeError(f"{self.describe()}: expected token ids of shape (batch, time), got {tuple(ids.shape)}")
        if self._states is not None and self._states[0][0].shape[0] != ids.shape[0]:
            raise ShapeError(f"{self.describe()}: the carried state has batch size {self._states[0][0].shape[0]} "
                             f"but the input has shape {tuple(ids.shape)}: call reset_states() first")
        x, finals = stack_forward(self.rnns, self._drop_before, self.embedding.forward(ids),
                                  initial_state=self._states)
        self._states = [[s.copy() for s in last] for last in finals]  # copies: the layers reuse their buffers
        x = self._drop(self.layers, x)
        if self.output is not None:
            return self.output.forward(x)
        B, T, H = x.shape
        self._h = x.reshape(B * T, H)
        logits = self._h @ self.embedding.embeddings.T
        logits += self.output_bias
        return logits.reshape(B, T, self.vocab_size)

    def backward(self, dlogits):
        if self.output is not None:
            dx = self.output.backward(dlogits)
        else:
            d2 = dlogits.reshape(-1, self.vocab_size)
            self._grads[0][...] = d2.sum(axis=0)
            dx = (d2 @ self.embedding.embeddings).reshape(*dlogits.shape[:-1], self.hidden)
        # no state gradient: truncated at the window start
        dx, _ = stack_backward(self.rnns, self._drop_before, self._drop_back(self.layers, dx))
        self.embedding.backward(dx)
        if self.output is None:
            # tied: the output layer's share of dE, added after the embedding wrote its own
            self.embedding.grads[0] += d2.T @ self._h
        return None

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.vocab_size)

    # ---- generation ---------------------------------------------------------------------------
    def generate(self, prime, length: int, temperature: float = 1.0, top_k: int | None = None,
                 seed: int | None = None) -> list[int]:
        """``length`` token ids sampled after the ``prime`` ids (at least one), one at a time.

        Each step draws from softmax(logits / temperature) restricted to the ``top_k`` most
        likely tokens (all when None); ``temperature=0`` picks the most likely token. The same
        ``seed`` gives the same text. Runs in eval mode from a reset state and leaves the
        state reset and the mode as it was. The prime goes through in windows of
        ``PRIME_WINDOW`` tokens (the state carried: the same as at once), so a long prime
        (``rnnlab sample --prime``) takes memory for one window.
        """
        xp = backend.xp
        prime = [int(i) for i in prime]
        if not prime:
            raise ValueError(f"{self.describe()}.generate: the prime must hold at least one token")
        if length < 0:
            raise ValueError(f"{self.describe()}.generate: length must be >= 0, got {length}")
        rng = np.random.default_rng(seed)
        self.reset_states()
        try:
            with eval_mode(self):
                # the prime in windows, the state carried across: its length bounds the work, not the memory
                for start in range(0, len(prime), PRIME_WINDOW):
                    logits = self.forward(xp.asarray([prime[start:start + PRIME_WINDOW]], dtype=np.int64))[0, -1]
                out = []
                for _ in range(length):
                    token = sample_next(backend.to_numpy(logits), temperature, top_k, rng)
                    out.append(token)
                    logits = self.forward(xp.asarray([[token]], dtype=np.int64))[0, -1]
        finally:
            self.reset_states()
        return out

    # ---- config -------------------------------------------------------------------------------
    def get_config(self) -> dict:
        return {**super().get_config(), "vocab_size": self.vocab_size, "emb": self.emb,
                "hidden": self.hidden, "layers": self.layers, "cell": self.cell, "dropout": self.dropout,
                "variational": self.variational, "tie_weights": self.tie_weights,
                "init_scale": self.init_scale}


def sample_next(logits, temperature: float = 1.0, top_k: int | None = None, rng=None) -> int:
    """One token id drawn from host logits (V,): softmax(logits / T) over the top-k ids.

    Probabilities are computed in float64 on the host (sampling only, not model math).
    """
    logits = np.asarray(logits, dtype=np.float64)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    if temperature == 0:
        return int(np.argmax(logits))
    z = logits / temperature
    if top_k is not None and top_k < z.size:
        kth = np.partition(z, -top_k)[-top_k]
        z = np.where(z >= kth, z, -np.inf)
    p = backend.to_numpy(L.softmax(backend.xp.asarray(z)))
    rng = rng if rng is not None else np.random.default_rng()
    return int(rng.choice(z.size, p=p))
