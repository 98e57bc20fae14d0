"""One-to-many: a captioner, a language model conditioned on a fixed feature vector.

    f (B, F) -> [Dropout] -> [optional, encoder] e = relu(f W_enc + b_enc) (B, E_enc); else e = f
    h_0 = tanh(e W_init + b_init)  per decoder layer (LSTM: c_0 = 0)
    [optional, feed_features] p = e W_feed + b_feed (B, P), fed to every step
    x_t = [Embedding(y_{t-1}) ; p]  ->  RecurrentStack (one way, starting from h_0)
        -> [Dropout] -> Dense(vocab) -> logits_t

``encoder`` (default 0: none) is the width of one ReLU layer between the features and both
projections: without it the features reach the decoder only through linear maps, so whatever
separates them (a digit's shape, say) must be found by the first recurrent step.
``dropout`` (default 0: none) drops input features (the same dropped features reach h_0 and
p) and the decoder's outputs, in training only; generation runs in eval mode without it.

Training uses teacher forcing: ``forward(features, tgt_in)`` with ``tgt_in`` = ``<bos>`` w_1 ..
w_n (padded with 0 after) predicts w_1 .. w_n ``<eos>``; the loss is masked over padding.
``backward`` returns dL/d(features): the gradient reaches the features through h_0 (and p).

For generation the captioner is a step model for ``rnnlab``'s greedy and beam search
(``init_decode``, ``decode_step``, ``select_state``); ``caption(features, beam_width=...)``
decodes a batch and returns their token ids.
"""
from __future__ import annotations

from .. import backend
from .. import validate
from ..layers import Dense, Dropout, Embedding, N_STATES
from ..layers.base import ShapeError
from ..losses import log_softmax
from ..search import StepEnsemble, decode as search_decode
from .base import Model, eval_mode
from .stack import RecurrentStack, part_seeds


class Captioner(Model):
    """See the module docstring. ``forward(features (B, F), tgt_in (B, T)) -> logits (B, T, V)``."""

    def __init__(self, feature_dim: int, vocab_size: int, emb: int = 32, hidden: int = 128, layers: int = 1,
                 cell: str = "lstm", feed_features: bool = False, feed_size: int = 32, bos_id: int = 2,
                 eos_id: int = 3, dropout: float = 0.0, encoder: int = 0, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.feature_dim, self.vocab_size, self.emb, self.hidden, self.layers, self.feed_size = (
            validate.positive_int(owner, arg, value) for arg, value in (
                ("feature_dim", feature_dim), ("vocab_size", vocab_size), ("emb", emb), ("hidden", hidden),
                ("layers", layers), ("feed_size", feed_size)))
        cell = validate.cell(owner, "cell", cell)
        self.feed_features = validate.flag(owner, "feed_features", feed_features)
        self.bos_id = validate.integer(owner, "bos_id", bos_id, 0, self.vocab_size - 1)
        self.eos_id = validate.integer(owner, "eos_id", eos_id, 0, self.vocab_size - 1)
        self.dropout = validate.rate(owner, "dropout", dropout)
        self.encoder_units = validate.integer(owner, "encoder", encoder, 0)
        # a prefix-stable draw: seeds[:5] are those of the parts before dropout, [:7] before the encoder
        seeds = part_seeds(self.seed, 8)
        self.encoder = None
        if self.encoder_units:
            self.encoder = Dense(self.encoder_units, activation="relu", seed=seeds[7])
            self.encoder.build((self.feature_dim,))
        code_dim = self.encoder_units or self.feature_dim
        self.init_proj = Dense(self.layers * self.hidden, activation="tanh", seed=seeds[0])
        self.init_proj.build((code_dim,))
        self.feed_proj = None
        if self.feed_features:
            self.feed_proj = Dense(self.feed_size, seed=seeds[1])
            self.feed_proj.build((code_dim,))
        self.embedding = Embedding(self.vocab_size, self.emb, seed=seeds[2])
        self.embedding.build((None,))
        self.decoder = RecurrentStack(self.hidden, self.layers, cell, seed=seeds[3])
        self.cell = self.decoder.cell
        self.decoder.build((None, self.emb + (self.feed_size if self.feed_features else 0)))
        self.head = Dense(self.vocab_size, seed=seeds[4])
        self.head.build((None, self.hidden))
        self.drops = [Dropout(self.dropout, seed=seeds[5 + i]) for i in range(2)] if self.dropout > 0 else []
        for drop, width in zip(self.drops, (self.feature_dim, self.hidden)):
            drop.build((None, width))
        self.sublayers += [p for p in (self.encoder, self.init_proj, self.feed_proj, self.embedding, self.decoder,
                                       self.head) if p is not None] + self.drops
        self.input_shape, self.built = (self.feature_dim,), True

    # ---- shared by training and decoding ------------------------------------------------------
    def _encode(self, features):
        """(B, F) features -> (B, F or encoder) code that both projections read (dropout first)."""
        if features.ndim != 2 or features.shape[1] != self.feature_dim:
            raise ShapeError(f"{self.describe()}: expected features of shape (batch, {self.feature_dim}), got "
                             f"{tuple(features.shape)}")
        if self.drops:
            features = self.drops[0].forward(features)
        return self.encoder.forward(features) if self.encoder is not None else features

    def _initial_states(self, code):
        xp = backend.xp
        h0 = self.init_proj.forward(code)
        H = self.hidden
        states = []
        for layer in range(self.layers):
            h = h0[:, layer * H:(layer + 1) * H]
            states.append([h] + [xp.zeros_like(h) for _ in range(N_STATES[self.cell] - 1)])
        return states

    def _inputs(self, tokens, feed):
        """(B, T) token ids -> decoder inputs (B, T, E [+ P])."""
        x = self.embedding.forward(tokens)
        if feed is None:
            return x
        xp = backend.xp
        return xp.concatenate([x, xp.broadcast_to(feed[:, None, :], (*tokens.shape, feed.shape[1]))], axis=-1)

    def forward(self, features, tgt_in, mask=None):
        if tgt_in.ndim != 2 or tgt_in.shape[0] != features.shape[0]:
            raise ShapeError(f"{self.describe()}: expected tgt_in (batch, time) for features of shape "
                             f"{tuple(features.shape)}, got {tuple(tgt_in.shape)}")
        code = self._encode(features)
        states = self._initial_states(code)
        feed = self.feed_proj.forward(code) if self.feed_proj is not None else None
        # right padding after <eos> cannot reach the real steps: the decoder needs no mask
        y = self.decoder.forward(self._inputs(tgt_in, feed), initial_state=states)
        if self.drops:
            y = self.drops[1].forward(y)
        return self.head.forward(y)

    def backward(self, dlogits):
        xp = backend.xp
        dy = self.head.backward(dlogits)
        if self.drops:
            dy = self.drops[1].backward(dy)
        dx = self.decoder.backward(dy)
        self.embedding.backward(dx[..., :self.emb])
        dh0 = xp.concatenate([d[0] for d in self.decoder.dinitial_state], axis=-1)
        dcode = self.init_proj.backward(dh0)
        if self.feed_proj is not None:
            dcode = dcode + self.feed_proj.backward(dx[..., self.emb:].sum(axis=1))
        dfeatures = self.encoder.backward(dcode) if self.encoder is not None else dcode
        if self.drops:
            dfeatures = self.drops[0].backward(dfeatures)
        return dfeatures

    # ---- the step model for greedy and beam search --------------------------------------------
    def init_decode(self, features, mask=None) -> dict:
        code = self._encode(features)
        state = {f"s{l}_{i}": s for l, layer in enumerate(self._initial_states(code)) for i, s in enumerate(layer)}
        if self.feed_proj is not None:
            state["feed"] = self.feed_proj.forward(code)
        return state

    def decode_step(self, state, tokens):
        k = N_STATES[self.cell]
        states = [[state[f"s{l}_{i}"] for i in range(k)] for l in range(self.layers)]
        y = self.decoder.forward(self._inputs(tokens[:, None], state.get("feed")), initial_state=states)
        logp = log_softmax(self.head.forward(y)[:, 0])
        new = dict(state)
        new.update({f"s{l}_{i}": s.copy() for l, layer in enumerate(self.decoder.final_states)
                    for i, s in enumerate(layer)})
        return logp, new, None

    def select_state(self, state, rows):
        return {key: value[rows] for key, value in state.items()}

    def caption(self, features, max_len: int = 20, beam_width: int = 1, length_penalty: float = 1.0):
        """Decode a batch of features (eval mode, restored after): an ``rnnlab.search.Decoded``
        whose ``tokens`` are the caption ids without ``<eos>``."""
        with eval_mode(self):
            return search_decode(self, backend.xp.asarray(features, dtype=self.head.kernel.dtype), None, max_len,
                                 self.bos_id, self.eos_id, beam_width, length_penalty)

    def compute_output_shape(self, input_shape):
        return (None, self.vocab_size)

    def get_config(self) -> dict:
        return {**super().get_config(), "feature_dim": self.feature_dim, "vocab_size": self.vocab_size,
                "emb": self.emb, "hidden": self.hidden, "layers": self.layers, "cell": self.cell,
                "feed_features": self.feed_features, "feed_size": self.feed_size, "bos_id": self.bos_id,
                "eos_id": self.eos_id, "dropout": self.dropout, "encoder": self.encoder_units}


class CaptionerEnsemble(StepEnsemble):
    """Captioners of one vocabulary and feature size captioning as one (next-word probabilities
    averaged at every step: ``search.StepEnsemble``); ``caption`` as ``Captioner.caption``."""

    def __init__(self, members):
        super().__init__(members)
        first = self.members[0]
        for member in self.members[1:]:
            if (member.feature_dim, member.vocab_size) != (first.feature_dim, first.vocab_size):
                raise ValueError(f"CaptionerEnsemble: {member.describe()} reads {member.feature_dim} features into "
                                 f"{member.vocab_size} words, {first.describe()} {first.feature_dim} into "
                                 f"{first.vocab_size}: members must agree")

    def caption(self, features, max_len: int = 20, beam_width: int = 1, length_penalty: float = 1.0):
        features = backend.xp.asarray(features, dtype=self.members[0].head.kernel.dtype)
        return self.search(features, None, max_len, beam_width, length_penalty)
