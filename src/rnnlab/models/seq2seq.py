"""Encoder-decoder (seq2seq) models, with and without attention.

An *encoder* reads the source x_1..x_S into states; a *decoder*, a language model conditioned
on them, writes the target. In training the decoder reads the true previous token (teacher
forcing): its input is ``<bos> y_1 .. y_n`` and it must predict ``y_1 .. y_n <eos>``.

    Encoder:   e = Embedding(x);  o_1..o_S, (h_S, c_S) = RNN_1..L(e, mask)   per layer
    Decoder:   s_0 = (h_S, c_S) per layer;  s_t = RNN(s_{t-1}, y_{t-1});  logits_t = Dense(s_t)

Variants (``Seq2Seq`` arguments):

- ``attention="none"``: the fixed-vector baseline (Sutskever et al. 2014; DLS2 ch. 7): all the
  decoder knows of the source is the encoder's final state.
- ``reverse=True``: the source is read backwards (within its length), so its first words are
  close to the first target words (Sutskever et al.).
- ``peeky=True``: the encoder's final top-layer h is fed to every decoder step, both into the
  recurrent layer's input and into the output layer (DLS2's PeekyDecoder).
- ``bidirectional=True``: each encoder layer reads both ways, ``hidden // 2`` units per
  direction, outputs and final states concatenated to ``hidden``.
- ``attention="luong"`` (Luong et al. 2015, ``score`` "dot" or "general"): the decoder
  recurrent layers run over the whole target, then every step attends over the encoder
  outputs, c_t = attend(s_t, o), and the *attentional hidden state*
  s~_t = tanh(W_c [c_t; s_t]) feeds the output layer. Training computes all steps at once.
- ``attention="bahdanau"`` (Bahdanau et al. 2015, additive score): the context is computed
  from the previous decoder state and fed into the step, c_t = attend(s_{t-1}, o),
  s_t = RNN(s_{t-1}, [y_{t-1}; c_t]), logits_t = Dense([s_t; c_t]). Because s_t depends on c_t,
  this decoder runs step by step even in training (``decoders.StepRNN``, on the step
  equations of ``layers/steps.py``): the embedding part of the
  input projection is one GEMM for all steps, and each step adds only c_t W_c + s_{t-1} U.

Any cell (``"lstm"``, ``"gru"``, ``"rnn"``, as ``layers/kinds.py`` names them) with any of its
options (``cell_options``, e.g. ``{"activation": "relu"}`` for "rnn", ``{"reset_after": False}``
for "gru"; every decoder, the step-by-step one included, honours them), any number of
stacked layers (``layers``; encoder and decoder have the same number, layer l of the decoder
starts from layer l of the encoder). For inference (``rnnlab.search``) the model is a step model: ``init_decode``,
``decode_step``, ``select_state``; ``translate_batch`` decodes and returns the attention
weights of each decoded sentence in source order (also when the source was reversed).
"""
from __future__ import annotations

from .. import backend
from .. import validate
from ..layers import kinds
from ..layers.base import ShapeError
from ..layers.bidirectional import Bidirectional
from .base import Model
from .decoders import AttentionDecoder, Decoder, EmbeddedStack, _seed

ATTENTIONS = ("none", "bahdanau", "luong")


def reverse_padded(x, lengths):
    """Reverse each row's first ``lengths[b]`` entries along axis 1; padding stays at the end."""
    xp = backend.xp
    steps = x.shape[1]
    j = xp.arange(steps)[None, :]
    lengths = xp.asarray(lengths).reshape(-1, 1)
    index = xp.where(j < lengths, lengths - 1 - j, j)
    if x.ndim == 2:
        return xp.take_along_axis(x, index, axis=1)
    return xp.take_along_axis(x, index.reshape(*index.shape, *([1] * (x.ndim - 2))), axis=1)


# ---- encoder ------------------------------------------------------------------------------------


class Encoder(EmbeddedStack):
    """Embedding, then ``layers`` stacked recurrent layers over the (masked) source.

    ``forward(src, mask)`` -> (outputs (B, S, hidden), states): ``states[l]`` is the list of
    final states of layer l ([h] or [h, c] for LSTM), each (B, hidden), the last *valid* step's
    (masked steps keep the state). ``backward(doutputs, dstates)`` takes the gradients of both.
    """

    def __init__(self, vocab_size: int, emb: int, hidden: int, cell: str = "lstm", layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, cell_options: dict | None = None, **kwargs):
        super().__init__(vocab_size, emb, hidden, cell, layers, dropout, cell_options, **kwargs)
        self.bidirectional = validate.flag(type(self).__name__, "bidirectional", bidirectional)
        if self.bidirectional and self.hidden % 2:
            raise ValueError(f"bidirectional encoder: hidden must be even (hidden // 2 units each way), got {hidden}")
        self.rnns = self._make_rnns(self.hidden // 2 if self.bidirectional else self.hidden)
        if self.bidirectional:
            self.rnns = [Bidirectional(rnn, merge_mode="concat", name=f"{self.name}_bidirectional_{l}")
                         for l, rnn in enumerate(self.rnns)]
        self._make_drops(self.layers)
        self.sublayers = [self.embedding, *self.rnns]

    def forward(self, src, mask=None):
        xp = backend.xp
        k = kinds.N_STATES[self.cell]
        x = self.embedding.forward(src)
        states = []
        for rnn, drop in zip(self.rnns, self.drops):
            x = drop.forward(x)
            y, *st = rnn.forward(x, mask=mask)
            if self.bidirectional:  # [h_f, (c_f), h_b, (c_b)] -> [h_f|h_b, (c_f|c_b)]
                st = [xp.concatenate([st[i], st[k + i]], axis=-1) for i in range(k)]
            states.append(st)
            x = y
        return x, states

    def backward(self, doutputs, dstates):
        half = self.hidden // 2
        dx = doutputs
        for l in reversed(range(self.layers)):
            ds = list(dstates[l])
            if self.bidirectional:
                ds = [d[:, :half] for d in ds] + [d[:, half:] for d in ds]
            dx = self.rnns[l].backward(dx, ds)
            dx = self.drops[l].backward(dx)
        self.embedding.backward(dx)
        return None

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "emb": self.emb, "hidden": self.hidden,
                "cell": self.cell, "layers": self.layers, "bidirectional": self.bidirectional,
                "dropout": self.dropout, **({"cell_options": self.cell_options} if self.cell_options else {})}


# ---- the model -------------------------------------------------------------------------------------


class Seq2Seq(Model):
    """Encoder-decoder with teacher forcing; see the module docstring for the variants.

    ``forward(src, tgt_in, src_mask=None)`` -> logits (B, T, V_tgt) for ``tgt_in`` =
    ``<bos> y_1 .. y_n``; src (B, S) int ids right-padded with 0, ``src_mask`` (B, S) bool
    (default: src != 0). ``backward(dlogits)`` fills ``grads``. After a forward of an attention
    model, ``attention_weights`` (B, T, S) are in source order.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, emb: int = 16, hidden: int = 128,
                 cell: str = "lstm", layers: int = 1, attention: str = "none", score: str = "dot",
                 attention_units: int | None = None, reverse: bool = False, peeky: bool = False,
                 bidirectional: bool = False, dropout: float = 0.0, bos_id: int = 2, eos_id: int = 3,
                 cell_options: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.cell_options = validate.options(owner, "cell_options", cell_options)
        self.attention = validate.choice(owner, "attention", attention, ATTENTIONS)
        self.score = validate.choice(owner, "score", score, ("dot", "general"))
        self.src_vocab_size = validate.positive_int(owner, "src_vocab_size", src_vocab_size)
        self.tgt_vocab_size = validate.positive_int(owner, "tgt_vocab_size", tgt_vocab_size)
        self.emb, self.hidden = validate.positive_int(owner, "emb", emb), validate.positive_int(owner, "hidden", hidden)
        self.cell, self.layers = validate.cell(owner, "cell", cell), validate.positive_int(owner, "layers", layers)
        self.attention_units = validate.optional_positive_int(owner, "attention_units", attention_units)
        self.reverse = validate.flag(owner, "reverse", reverse)
        self.peeky = validate.flag(owner, "peeky", peeky)
        self.bidirectional = validate.flag(owner, "bidirectional", bidirectional)
        self.dropout = validate.rate(owner, "dropout", dropout)
        self.bos_id = validate.integer(owner, "bos_id", bos_id, 0, self.tgt_vocab_size - 1)
        self.eos_id = validate.integer(owner, "eos_id", eos_id, 0, self.tgt_vocab_size - 1)
        seed = self.seed
        self.encoder = Encoder(self.src_vocab_size, self.emb, self.hidden, self.cell, self.layers,
                               self.bidirectional, self.dropout, self.cell_options, seed=_seed(seed, 0),
                               name="encoder")
        if attention == "none":
            self.decoder = Decoder(self.tgt_vocab_size, self.emb, self.hidden, self.cell, self.layers, self.peeky,
                                   self.dropout, self.cell_options, seed=_seed(seed, 1000), name="decoder")
        else:
            self.decoder = AttentionDecoder(self.tgt_vocab_size, self.emb, self.hidden, self.cell, self.layers,
                                            attention, score, attention_units, self.peeky, self.dropout,
                                            self.cell_options, seed=_seed(seed, 1000), name="decoder")
        self.sublayers = [self.encoder, self.decoder]

    # ---- training -----------------------------------------------------------------------------------
    def _source(self, src, src_mask):
        if src.ndim != 2 or src.dtype.kind not in "iu":
            raise ShapeError(f"{self.describe()}: expected source ids of shape (batch, source_len), integer, "
                             f"got {tuple(src.shape)} {src.dtype}")
        if src_mask is None:
            src_mask = src != 0
        if tuple(src_mask.shape) != tuple(src.shape):
            raise ShapeError(f"{self.describe()}: source mask of shape {tuple(src_mask.shape)} does not match "
                             f"source of shape {tuple(src.shape)}")
        src_mask = src_mask.astype(bool)
        lengths = src_mask.sum(axis=1)
        if bool((lengths == 0).any()):
            raise ValueError(f"{self.describe()}: every source needs at least one token (a row of the mask is empty)")
        if self.reverse:
            src = reverse_padded(src, lengths)
        return src, src_mask, lengths

    def forward(self, src, tgt_in, src_mask=None):
        if tgt_in.ndim != 2 or tgt_in.shape[0] != src.shape[0]:
            raise ShapeError(f"{self.describe()}: expected target input ids of shape (batch, target_len) with "
                             f"batch {src.shape[0]}, got {tuple(tgt_in.shape)}")
        src, src_mask, lengths = self._source(src, src_mask)
        self.lengths = lengths
        enc_out, states = self.encoder.forward(src, src_mask)
        peek = states[-1][0] if self.peeky else None
        logits = self.decoder.forward(tgt_in, states, peek, enc_out if self.attention != "none" else None, src_mask)
        if self.attention != "none":
            w = self.decoder.attention_weights
            self.attention_weights = reverse_padded(w.transpose(0, 2, 1), lengths).transpose(0, 2, 1) \
                if self.reverse else w
        self.enc_shape = enc_out.shape
        return logits

    def backward(self, dlogits):
        xp = backend.xp
        dstates, dpeek = self.decoder.backward(dlogits)
        if dpeek is not None:
            dstates[-1][0] = dstates[-1][0] + dpeek
        denc = self.decoder.denc_outputs
        if denc is None:
            denc = xp.zeros(self.enc_shape, dtype=dlogits.dtype)
        self.encoder.backward(denc, dstates)
        return None

    # ---- inference (the step model of rnnlab.search) -----------------------------------------------
    def init_decode(self, src, src_mask=None) -> dict:
        src, src_mask, lengths = self._source(src, src_mask)
        enc_out, states = self.encoder.forward(src, src_mask)
        state = {f"s{l}_{i}": s for l, st in enumerate(states) for i, s in enumerate(st)}
        state["lengths"] = lengths
        if self.peeky:
            state["peek"] = states[-1][0]
        if self.attention != "none":
            state.update({f"att_{k}": v for k, v in self.decoder.init_step(enc_out, src_mask).items()})
        return state

    def decode_step(self, state, tokens):
        k = kinds.N_STATES[self.cell]
        states = [[state[f"s{l}_{i}"] for i in range(k)] for l in range(self.layers)]
        extra = {key[4:]: v for key, v in state.items() if key.startswith("att_")} or None
        logp, states, weights = self.decoder.step(tokens, states, state.get("peek"), extra)
        new = dict(state)
        new.update({f"s{l}_{i}": s for l, st in enumerate(states) for i, s in enumerate(st)})
        if weights is not None and self.reverse:
            weights = reverse_padded(weights, state["lengths"])
        return logp, new, weights

    def select_state(self, state, rows):
        return {key: (v[rows] if v is not None else None) for key, v in state.items()}

    def translate_batch(self, src, src_mask=None, max_len: int = 50, beam_width: int = 1,
                        length_penalty: float = 1.0):
        """Decode a batch (eval mode; restores the mode after): an ``rnnlab.search.Decoded``."""
        from ..search import decode
        was_training = self.training
        self.eval()
        try:
            return decode(self, src, src_mask, max_len, self.bos_id, self.eos_id, beam_width, length_penalty)
        finally:
            self.train(was_training)

    # ---- summary: the parts, with the time axis shown as None (lengths vary by batch) -----------
    def _summary_layers(self):
        enc, dec = self.encoder, self.decoder
        parts = [enc.embedding, *enc.rnns, dec.embedding, *dec.rnns]
        if self.attention != "none":
            parts.append(dec.attn)
            if self.attention == "luong":
                parts.append(dec.combine)
        return parts + [dec.dense]

    def summary_rows(self) -> list[dict]:
        rows = super().summary_rows()

        def open_time(shape):
            if isinstance(shape, list):
                return [open_time(s) for s in shape]
            if isinstance(shape, tuple) and len(shape) >= 3:
                return (None, None, *shape[2:])
            return shape

        for row, layer in zip(rows, self._summary_layers()):
            row["output_shape"] = open_time(row["output_shape"])
            if layer is getattr(self.decoder, "attn", None) and layer.built:
                row["output_shape"] = (None, None, layer.key_dim)  # one context per target step
        return rows

    def get_config(self):
        return {**super().get_config(), "src_vocab_size": self.src_vocab_size, "tgt_vocab_size": self.tgt_vocab_size,
                "emb": self.emb, "hidden": self.hidden, "cell": self.cell, "layers": self.layers,
                "attention": self.attention, "score": self.score, "attention_units": self.attention_units,
                "reverse": self.reverse, "peeky": self.peeky, "bidirectional": self.bidirectional,
                "dropout": self.dropout, "bos_id": self.bos_id, "eos_id": self.eos_id,
                **({"cell_options": self.cell_options} if self.cell_options else {})}
