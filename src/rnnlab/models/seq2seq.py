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
  this decoder runs step by step even in training (``_StepRNN``): the embedding part of the
  input projection is one GEMM for all steps, and each step adds only c_t W_c + s_{t-1} U.

Any cell (``"lstm"``, ``"gru"``, ``"rnn"``), any number of stacked layers (``layers``;
encoder and decoder have the same number, layer l of the decoder starts from layer l of the
encoder). For inference (``rnnlab.decode``) the model is a step model: ``init_decode``,
``decode_step``, ``select_state``; ``translate_batch`` decodes and returns the attention
weights of each decoded sentence in source order (also when the source was reversed).
"""
from __future__ import annotations

from .. import backend
from ..layers.attention import BahdanauAttention, LuongAttention
from ..layers.base import Layer, ShapeError
from ..layers.core import Dense, Dropout, Embedding, _sigmoid
from ..losses import log_softmax
from .base import Model

CELLS = {"lstm": "LSTM", "gru": "GRU", "rnn": "SimpleRNN"}  # classes of rnnlab.layers.recurrent
_CELL_ALIASES = {"simplernn": "rnn", "simple_rnn": "rnn", "lstm": "lstm", "gru": "gru", "rnn": "rnn"}
ATTENTIONS = ("none", "bahdanau", "luong")


def cell_kind(cell: str) -> str:
    kind = _CELL_ALIASES.get(str(cell).lower())
    if kind is None:
        raise ValueError(f"unknown cell {cell!r}: use 'lstm', 'gru' or 'rnn'")
    return kind


def n_states(kind: str) -> int:
    return 2 if kind == "lstm" else 1


def _recurrent(kind: str, units: int, seed=None, name=None):
    from ..layers import recurrent  # imported when used: rnnlab.models loads without it

    cls = getattr(recurrent, CELLS[kind])
    return cls(units, return_sequences=True, return_state=True, seed=seed, name=name)


def _seed(seed, k):
    return None if seed is None else seed + k


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


# ---- one recurrent layer, run a step at a time --------------------------------------------------


class _StepRNN:
    """Runs a whole-sequence recurrent layer (``LSTM``, ``GRU`` with ``reset_after``,
    ``SimpleRNN``) one step at a time on its own Keras-layout weights ``kernel`` W (D, G*H),
    ``recurrent_kernel`` U (H, G*H), ``bias``; writes that layer's ``grads``.

    The caller gives each step its input already projected, ``xz_t = x_t W + b`` (so the part of
    the input known in advance is one GEMM for all steps), and gets back dL/dxz_t; ``finish``
    forms dU (and the recurrent bias of a GRU) as one GEMM over all the recorded steps, and
    ``input_grads`` forms dW and the input bias from all steps' inputs and dL/dxz.

    Step equations (gate order as Keras: LSTM i, f, c, o; GRU z, r, h):
        LSTM: z = xz + h U;  i, f, o = sigmoid;  g = tanh;  c' = f c + i g;  h' = o tanh(c')
        GRU:  hz = h U + b_rec;  z = s(xz_z + hz_z);  r = s(xz_r + hz_r);
              n = tanh(xz_h + r hz_h);  h' = z h + (1 - z) n
        RNN:  h' = tanh(xz + h U)
    """

    def __init__(self, layer, kind: str):
        self.layer, self.kind = layer, kind
        self.units = layer.units

    @property
    def kernel(self):
        return self.layer.params[0]

    @property
    def recurrent_kernel(self):
        return self.layer.params[1]

    @property
    def bias(self):
        return self.layer.params[2]

    def input_bias(self):
        b = self.bias
        return b[0] if b.ndim == 2 else b

    def project(self, x):
        """x (..., D) -> x W + b (..., G*H)."""
        return x @ self.kernel + self.input_bias()

    def start(self):
        self.caches = []
        self.h_prev, self.dz_rec = [], []

    def step(self, xz, states, keep: bool = True):
        xp = backend.xp
        H = self.units
        h = states[0]
        U = self.recurrent_kernel
        if self.kind == "lstm":
            c = states[1]
            z = xz + h @ U
            i = _sigmoid(z[:, :H])
            f = _sigmoid(z[:, H:2 * H])
            g = xp.tanh(z[:, 2 * H:3 * H])
            o = _sigmoid(z[:, 3 * H:])
            c_new = f * c + i * g
            tc = xp.tanh(c_new)
            h_new = o * tc
            new = [h_new, c_new]
            cache = (h, c, i, f, g, o, tc)
        elif self.kind == "gru":
            if self.bias.ndim != 2:
                raise ValueError(f"{self.layer.describe()}: the step-by-step decoder needs GRU(reset_after=True)")
            hz = h @ U + self.bias[1]
            zr = _sigmoid(xz[:, :2 * H] + hz[:, :2 * H])
            z, r = zr[:, :H], zr[:, H:]
            n = xp.tanh(xz[:, 2 * H:] + r * hz[:, 2 * H:])
            h_new = z * h + (1.0 - z) * n
            new = [h_new]
            cache = (h, z, r, n, hz[:, 2 * H:])
        else:
            h_new = xp.tanh(xz + h @ U)
            new = [h_new]
            cache = (h, h_new)
        if keep:
            self.caches.append(cache)
        return new

    def step_backward(self, dstates):
        """From dL/d(new states) of the latest kept step: (dL/dxz, dL/d(previous states))."""
        xp = backend.xp
        cache = self.caches.pop()
        U = self.recurrent_kernel
        if self.kind == "lstm":
            h, c, i, f, g, o, tc = cache
            dh, dc = dstates
            dc_total = dc + dh * o * (1.0 - tc * tc)
            dz = xp.concatenate([dc_total * g * i * (1.0 - i), dc_total * c * f * (1.0 - f),
                                 dc_total * i * (1.0 - g * g), dh * tc * o * (1.0 - o)], axis=1)
            self.h_prev.append(h)
            self.dz_rec.append(dz)
            return dz, [dz @ U.T, dc_total * f]
        if self.kind == "gru":
            h, z, r, n, hz_h = cache
            (dh,) = dstates
            dn_pre = dh * (1.0 - z) * (1.0 - n * n)
            dz_pre = dh * (h - n) * z * (1.0 - z)
            dr_pre = dn_pre * hz_h * r * (1.0 - r)
            dxz = xp.concatenate([dz_pre, dr_pre, dn_pre], axis=1)
            dhz = xp.concatenate([dz_pre, dr_pre, dn_pre * r], axis=1)
            self.h_prev.append(h)
            self.dz_rec.append(dhz)
            return dxz, [dh * z + dhz @ U.T]
        h, h_new = cache
        (dh,) = dstates
        da = dh * (1.0 - h_new * h_new)
        self.h_prev.append(h)
        self.dz_rec.append(da)
        return da, [da @ U.T]

    def finish(self):
        """dU (and the GRU recurrent bias) from all steps taken back, in one GEMM."""
        xp = backend.xp
        grads = self.layer.grads
        if not self.h_prev:
            grads[1][...] = 0
            return
        h_prev = xp.concatenate(self.h_prev, axis=0)
        dz = xp.concatenate(self.dz_rec, axis=0)
        grads[1][...] = h_prev.T @ dz
        if self.bias.ndim == 2:
            grads[2][1] = dz.sum(axis=0)
        self.h_prev, self.dz_rec = [], []

    def input_grads(self, x, dxz):
        """dW and the input bias from inputs x (N, D) and dL/dxz (N, G*H) of all steps."""
        grads = self.layer.grads
        grads[0][...] = x.T @ dxz
        if self.bias.ndim == 2:
            grads[2][0] = dxz.sum(axis=0)
        else:
            grads[2][...] = dxz.sum(axis=0)


# ---- encoder ------------------------------------------------------------------------------------


class Encoder(Layer):
    """Embedding, then ``layers`` stacked recurrent layers over the (masked) source.

    ``forward(src, mask)`` -> (outputs (B, S, hidden), states): ``states[l]`` is the list of
    final states of layer l ([h] or [h, c] for LSTM), each (B, hidden), the last *valid* step's
    (masked steps keep the state). ``backward(doutputs, dstates)`` takes the gradients of both.
    """

    def __init__(self, vocab_size: int, emb: int, hidden: int, cell: str = "lstm", layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.emb, self.hidden = int(vocab_size), int(emb), int(hidden)
        self.cell, self.layers = cell_kind(cell), int(layers)
        self.bidirectional, self.dropout = bool(bidirectional), float(dropout)
        if self.bidirectional and self.hidden % 2:
            raise ValueError(f"bidirectional encoder: hidden must be even (hidden // 2 units each way), got {hidden}")
        seed = self.seed
        self.embedding = Embedding(self.vocab_size, self.emb, seed=_seed(seed, 0), name=f"{self.name}_embedding")
        units = self.hidden // 2 if self.bidirectional else self.hidden
        self.rnns = []
        for l in range(self.layers):
            rnn = _recurrent(self.cell, units, _seed(seed, 1 + l), f"{self.name}_{self.cell}_{l}")
            if self.bidirectional:
                from ..layers.recurrent import Bidirectional
                rnn = Bidirectional(rnn, merge_mode="concat", name=f"{self.name}_bidirectional_{l}")
            self.rnns.append(rnn)
        self.drops = [Dropout(self.dropout, seed=_seed(seed, 100 + l)) for l in range(self.layers)]
        self.sublayers = [self.embedding, *self.rnns]

    def train(self, mode: bool = True):
        super().train(mode)
        for d in self.drops:
            d.train(mode)
        return self

    def forward(self, src, mask=None):
        xp = backend.xp
        k = n_states(self.cell)
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
                "dropout": self.dropout}


# ---- decoders -------------------------------------------------------------------------------------


class Decoder(Layer):
    """Decoder without attention, over the whole target at once (teacher forcing).

    ``forward(tgt_in, init_states, peek=None)`` -> logits (B, T, V). ``peek`` (B, H): the
    encoder vector fed to every step (peeky decoder): input [e_t; peek], output Dense([s_t; peek]).
    ``backward(dlogits)`` -> (dL/d init_states, dL/d peek or None).
    """

    def __init__(self, vocab_size: int, emb: int, hidden: int, cell: str = "lstm", layers: int = 1,
                 peeky: bool = False, dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.emb, self.hidden = int(vocab_size), int(emb), int(hidden)
        self.cell, self.layers, self.peeky, self.dropout = cell_kind(cell), int(layers), bool(peeky), float(dropout)
        seed = self.seed
        self.embedding = Embedding(self.vocab_size, self.emb, seed=_seed(seed, 0), name=f"{self.name}_embedding")
        self.rnns = [_recurrent(self.cell, self.hidden, _seed(seed, 1 + l), f"{self.name}_{self.cell}_{l}")
                     for l in range(self.layers)]
        self.drops = [Dropout(self.dropout, seed=_seed(seed, 100 + l)) for l in range(self.layers + 1)]
        self._make_output(seed)

    def _make_output(self, seed):
        self.dense = Dense(self.vocab_size, seed=_seed(seed, 50), name=f"{self.name}_dense")
        self.sublayers = [self.embedding, *self.rnns, self.dense]
        self.steppers = [_StepRNN(r, self.cell) for r in self.rnns]

    def train(self, mode: bool = True):
        super().train(mode)
        for d in self.drops:
            d.train(mode)
        return self

    def _peek_cat(self, x, peek):
        """[x_t; peek] for every step t of x (B, T, D)."""
        xp = backend.xp
        return xp.concatenate([x, xp.broadcast_to(peek[:, None, :], (*x.shape[:2], peek.shape[-1]))], axis=-1)

    def _run_rnns(self, x, init_states):
        """The stacked recurrent layers over the whole sequence; returns the top outputs."""
        for rnn, drop, st in zip(self.rnns, self.drops, init_states):
            x = drop.forward(x)
            x, *_ = rnn.forward(x, initial_state=list(st))
        return self.drops[-1].forward(x)

    def _rnns_backward(self, dy):
        dy = self.drops[-1].backward(dy)
        dinit = [None] * self.layers
        for l in reversed(range(self.layers)):
            dy = self.rnns[l].backward(dy)
            dinit[l] = list(self.rnns[l].dinitial_state)
            dy = self.drops[l].backward(dy)
        return dy, dinit

    def _embed(self, tgt_in, peek):
        x = self.embedding.forward(tgt_in)
        if self.peeky:
            if peek is None:
                raise ValueError(f"{self.describe()}: a peeky decoder needs the encoder vector (peek)")
            x = self._peek_cat(x, peek)
        return x

    def _embed_backward(self, dx):
        demb = dx[..., :self.emb]
        self.embedding.backward(demb)
        return dx[..., self.emb:].sum(axis=1) if self.peeky else None

    def forward(self, tgt_in, init_states, peek=None, enc_outputs=None, src_mask=None):
        self.peek = peek
        y = self._run_rnns(self._embed(tgt_in, peek), init_states)
        return self.dense.forward(self._peek_cat(y, peek) if self.peeky else y)

    def backward(self, dlogits):
        dout = self.dense.backward(dlogits)
        dpeek = None
        if self.peeky:
            dout, dpeek = dout[..., :self.hidden], dout[..., self.hidden:].sum(axis=1)
        dx, dinit = self._rnns_backward(dout)
        dpeek_in = self._embed_backward(dx)
        if self.peeky:
            dpeek = dpeek + dpeek_in
        self.denc_outputs = None
        return dinit, dpeek

    # ---- inference: one step ----------------------------------------------------------------------
    def init_step(self, enc_outputs, src_mask, attention_state=None) -> dict:
        return {}

    def _stack_step(self, x, states):
        """One step of the stacked layers (no caching): new per-layer states."""
        new = []
        for stepper, st in zip(self.steppers, states):
            st = stepper.step(stepper.project(x), st, keep=False)
            new.append(st)
            x = st[0]
        return new

    def step(self, tokens, states, peek=None, extra=None):
        """Log-probabilities (N, V) of the next token after ``tokens`` (N,); new states; attention."""
        x = self.embedding.embeddings[tokens]
        if self.peeky:
            x = backend.xp.concatenate([x, peek], axis=-1)
        states = self._stack_step(x, states)
        h = states[-1][0]
        logits = self.dense.forward(backend.xp.concatenate([h, peek], axis=-1) if self.peeky else h)
        return log_softmax(logits), states, None

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "emb": self.emb, "hidden": self.hidden,
                "cell": self.cell, "layers": self.layers, "peeky": self.peeky, "dropout": self.dropout}


class AttentionDecoder(Decoder):
    """Decoder with attention over the encoder outputs (``attention`` "luong" or "bahdanau").

    ``forward(tgt_in, init_states, peek, enc_outputs, src_mask)`` -> logits; after it,
    ``attention_weights`` (B, T, S) holds the weights of every target step. ``backward(dlogits)``
    -> (dL/d init_states, dL/d peek or None) and leaves dL/d enc_outputs in ``denc_outputs``.
    See the module docstring for the equations of both kinds.
    """

    def __init__(self, vocab_size: int, emb: int, hidden: int, cell: str = "lstm", layers: int = 1,
                 attention: str = "luong", score: str = "dot", attention_units: int | None = None,
                 peeky: bool = False, dropout: float = 0.0, **kwargs):
        if attention not in ("luong", "bahdanau"):
            raise ValueError(f"AttentionDecoder: attention must be 'luong' or 'bahdanau', got {attention!r}")
        self.attention, self.score = attention, score
        self.attention_units = int(attention_units or hidden)
        super().__init__(vocab_size, emb, hidden, cell, layers, peeky, dropout, **kwargs)

    def _make_output(self, seed):
        if self.attention == "luong":
            self.attn = LuongAttention(self.score, seed=_seed(seed, 60), name=f"{self.name}_attention")
            self.combine = Dense(self.hidden, activation="tanh", use_bias=False, seed=_seed(seed, 61),
                                 name=f"{self.name}_combine")
            self.dense = Dense(self.vocab_size, seed=_seed(seed, 50), name=f"{self.name}_dense")
            self.sublayers = [self.embedding, *self.rnns, self.attn, self.combine, self.dense]
        else:
            self.attn = BahdanauAttention(self.attention_units, seed=_seed(seed, 60), name=f"{self.name}_attention")
            self.dense = Dense(self.vocab_size, seed=_seed(seed, 50), name=f"{self.name}_dense")
            self.sublayers = [self.embedding, *self.rnns, self.attn, self.dense]
        self.steppers = [_StepRNN(r, self.cell) for r in self.rnns]

    def forward(self, tgt_in, init_states, peek=None, enc_outputs=None, src_mask=None):
        if enc_outputs is None:
            raise ValueError(f"{self.describe()}: an attention decoder needs the encoder outputs")
        self.peek = peek
        if self.attention == "luong":
            return self._luong_forward(tgt_in, init_states, peek, enc_outputs, src_mask)
        return self._bahdanau_forward(tgt_in, init_states, peek, enc_outputs, src_mask)

    def backward(self, dlogits):
        if self.attention == "luong":
            return self._luong_backward(dlogits)
        return self._bahdanau_backward(dlogits)

    def _out_input(self, parts):
        """Concatenate the output layer's inputs: [s_t; c_t] (+ peek for a peeky decoder)."""
        xp = backend.xp
        x = xp.concatenate(parts, axis=-1)
        return self._peek_cat(x, self.peek) if self.peeky else x

    # ---- Luong: recurrent layers over all steps, then attention over all steps at once ----------
    def _luong_forward(self, tgt_in, init_states, peek, enc_outputs, src_mask):
        s = self._run_rnns(self._embed(tgt_in, peek), init_states)
        context = self.attn.forward(s, enc_outputs, src_mask)
        self.attention_weights = self.attn.attention_weights
        s_tilde = self.combine.forward(backend.xp.concatenate([context, s], axis=-1))
        return self.dense.forward(self._peek_cat(s_tilde, peek) if self.peeky else s_tilde)

    def _luong_backward(self, dlogits):
        H = self.hidden
        dout = self.dense.backward(dlogits)
        dpeek = None
        if self.peeky:
            dout, dpeek = dout[..., :H], dout[..., H:].sum(axis=1)
        dcat = self.combine.backward(dout)
        dcontext, ds = dcat[..., :self.attn.key_dim], dcat[..., self.attn.key_dim:]
        ds = ds + self.attn.backward(dcontext)
        self.denc_outputs = self.attn.dkeys
        dx, dinit = self._rnns_backward(ds)
        dpeek_in = self._embed_backward(dx)
        if self.peeky:
            dpeek = dpeek + dpeek_in
        return dinit, dpeek

    # ---- Bahdanau: step by step, the context of s_{t-1} goes into step t -------------------------
    def _bahdanau_forward(self, tgt_in, init_states, peek, enc_outputs, src_mask):
        xp = backend.xp
        B, T = tgt_in.shape
        H = self.hidden
        x_static = self.drops[0].forward(self._embed(tgt_in, peek))  # (B, T, E [+ H])
        self.static_dim = x_static.shape[-1]
        if not self.attn.built:
            self.attn.build((H,), enc_outputs.shape[-1])
        self.attn.begin(enc_outputs, src_mask)
        first = self.rnns[0]
        if not first.built:
            first.build((None, self.static_dim + enc_outputs.shape[-1]))
        for l in range(1, self.layers):
            if not self.rnns[l].built:
                self.rnns[l].build((None, H))
        for stepper in self.steppers:
            stepper.start()
        kernel0 = first.params[0]
        # input projection of the known part of layer 0's input, all steps in one GEMM
        xz_static = x_static @ kernel0[:self.static_dim] + self.steppers[0].input_bias()
        w_context = kernel0[self.static_dim:]
        states = [list(st) for st in init_states]
        tops, contexts, weights = [], [], []
        self.layer_inputs = [[] for _ in range(self.layers)]  # inputs of layers 1.. per step
        for t in range(T):
            c = self.attn.step(states[-1][0])
            weights.append(self.attn.attention_weights)
            states[0] = self.steppers[0].step(xz_static[:, t] + c @ w_context, states[0])
            for l in range(1, self.layers):
                x = states[l - 1][0]
                self.layer_inputs[l].append(x)
                states[l] = self.steppers[l].step(self.steppers[l].project(x), states[l])
            tops.append(states[-1][0])
            contexts.append(c)
        s = xp.stack(tops, axis=1)
        context = xp.stack(contexts, axis=1)
        self.x_static, self.context_seq = x_static, context
        self.attention_weights = xp.stack(weights, axis=1)
        out_in = self.drops[-1].forward(self._out_input([s, context]))
        return self.dense.forward(out_in)

    def _bahdanau_backward(self, dlogits):
        xp = backend.xp
        H, L = self.hidden, self.layers
        dout = self.drops[-1].backward(self.dense.backward(dlogits))
        ds_out, dcontext_out = dout[..., :H], dout[..., H:2 * H]
        dpeek = dout[..., 2 * H:].sum(axis=1) if self.peeky else None
        B, T = ds_out.shape[:2]
        w_context = self.rnns[0].params[0][self.static_dim:]
        carry = [[xp.zeros((B, H), dtype=ds_out.dtype) for _ in range(n_states(self.cell))] for _ in range(L)]
        dxz0 = [None] * T
        dxz_upper = [[None] * T for _ in range(L)]
        for t in reversed(range(T)):
            carry[-1][0] = carry[-1][0] + ds_out[:, t]
            for l in reversed(range(L)):
                dxz, carry[l] = self.steppers[l].step_backward(carry[l])
                if l > 0:
                    dxz_upper[l][t] = dxz
                    carry[l - 1][0] = carry[l - 1][0] + dxz @ self.rnns[l].params[0].T
                else:
                    dxz0[t] = dxz
            dcontext = dcontext_out[:, t] + dxz0[t] @ w_context.T
            carry[-1][0] = carry[-1][0] + self.attn.step_backward(dcontext)
        self.denc_outputs = self.attn.end_backward()
        # weight gradients of all steps at once
        dxz0 = xp.stack(dxz0, axis=1)
        x0 = xp.concatenate([self.x_static, self.context_seq], axis=-1)
        self.steppers[0].input_grads(x0.reshape(B * T, -1), dxz0.reshape(B * T, -1))
        for l in range(1, L):
            x = xp.stack(self.layer_inputs[l], axis=1).reshape(B * T, H)
            self.steppers[l].input_grads(x, xp.stack(dxz_upper[l], axis=1).reshape(B * T, -1))
        for stepper in self.steppers:
            stepper.finish()
        dx_static = dxz0 @ self.rnns[0].params[0][:self.static_dim].T
        dpeek_in = self._embed_backward(self.drops[0].backward(dx_static))
        if self.peeky:
            dpeek = dpeek + dpeek_in
        return carry, dpeek

    # ---- inference ----------------------------------------------------------------------------------
    def init_step(self, enc_outputs, src_mask, attention_state=None) -> dict:
        return self.attn.prepare(enc_outputs, src_mask)

    def step(self, tokens, states, peek=None, extra=None):
        xp = backend.xp
        x = self.embedding.embeddings[tokens]
        if self.peeky:
            x = xp.concatenate([x, peek], axis=-1)
        if self.attention == "luong":
            states = self._stack_step(x, states)
            s = states[-1][0]
            context, weights = self.attn.attend(s, extra)
            out = self.combine.forward(xp.concatenate([context, s], axis=-1))
        else:
            context, weights = self.attn.attend(states[-1][0], extra)
            stepper = self.steppers[0]
            new = [stepper.step(stepper.project(xp.concatenate([x, context], axis=-1)), states[0], keep=False)]
            for l in range(1, self.layers):
                st = self.steppers[l]
                new.append(st.step(st.project(new[-1][0]), states[l], keep=False))
            states = new
            out = xp.concatenate([states[-1][0], context], axis=-1)
        if self.peeky:
            out = xp.concatenate([out, peek], axis=-1)
        return log_softmax(self.dense.forward(out)), states, weights

    def get_config(self):
        return {**super().get_config(), "attention": self.attention, "score": self.score,
                "attention_units": self.attention_units}


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
                 **kwargs):
        super().__init__(**kwargs)
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}, got {attention!r}")
        if int(layers) < 1:
            raise ValueError(f"layers must be at least 1, got {layers}")
        self.src_vocab_size, self.tgt_vocab_size = int(src_vocab_size), int(tgt_vocab_size)
        self.emb, self.hidden, self.cell, self.layers = int(emb), int(hidden), cell_kind(cell), int(layers)
        self.attention, self.score = attention, score
        self.attention_units = attention_units
        self.reverse, self.peeky, self.bidirectional = bool(reverse), bool(peeky), bool(bidirectional)
        self.dropout, self.bos_id, self.eos_id = float(dropout), int(bos_id), int(eos_id)
        seed = self.seed
        self.encoder = Encoder(self.src_vocab_size, self.emb, self.hidden, self.cell, self.layers,
                               self.bidirectional, self.dropout, seed=_seed(seed, 0), name="encoder")
        if attention == "none":
            self.decoder = Decoder(self.tgt_vocab_size, self.emb, self.hidden, self.cell, self.layers, self.peeky,
                                   self.dropout, seed=_seed(seed, 1000), name="decoder")
        else:
            self.decoder = AttentionDecoder(self.tgt_vocab_size, self.emb, self.hidden, self.cell, self.layers,
                                            attention, score, attention_units, self.peeky, self.dropout,
                                            seed=_seed(seed, 1000), name="decoder")
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

    # ---- inference (the step model of rnnlab.decode) -----------------------------------------------
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
        k = n_states(self.cell)
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
        """Decode a batch (eval mode; restores the mode after): an ``rnnlab.decode.Decoded``."""
        from ..decode import decode
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
                "dropout": self.dropout, "bos_id": self.bos_id, "eos_id": self.eos_id}
