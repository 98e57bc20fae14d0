"""The decoders of ``Seq2Seq`` (see ``seq2seq.py`` for the model and the equations of every
variant), and ``StepRNN``, which runs a whole-sequence recurrent layer a step at a time.

``Decoder`` (no attention, or a peeky decoder) runs its recurrent layers over the whole target;
``AttentionDecoder`` adds Luong attention (recurrent layers over all steps, then attention over
all steps at once) or Bahdanau attention (the context of s_{t-1} goes into step t, so the
layers run step by step through ``StepRNN``, also in training). Both have a one-step form for
inference (``init_step`` / ``step``) that ``rnnlab.search`` drives.
"""
from __future__ import annotations

from .. import backend
from .. import validate
from ..layers import kinds, steps
from ..layers.attention import BahdanauAttention, LuongAttention
from ..layers.base import Layer
from ..layers.core import Dense, Dropout, Embedding, log_softmax
from .stack import part_seeds, recurrent_layers, stack_backward, stack_forward


# ---- one recurrent layer, run a step at a time --------------------------------------------------


class StepRNN:
    """Runs a whole-sequence recurrent layer (``SimpleRNN`` with any activation, ``LSTM``, ``GRU``
    in either ``reset_after`` form) one step at a time on its own weights, with the step
    equations of ``layers/steps.py`` (the ones its cell uses); writes that layer's ``grads``.

    The caller gives each step its input already projected, ``xz_t = x_t W + b_in`` (so the
    part of the input known in advance is one GEMM for all steps), and gets back dL/dxz_t;
    ``finish`` writes dU (and a GRU's recurrent bias), summed over the steps taken back, and
    ``input_grads`` forms dW and the input bias from all steps' inputs and dL/dxz.
    """

    def __init__(self, layer):
        self.layer = layer
        self.kind = kinds.cell_kind(layer)
        self.units = layer.units
        self.start()

    def project(self, x):
        """x (..., D) -> x W + b_in (..., G*H)."""
        return x @ self.layer.kernel + self.layer.input_bias()

    def input_bias(self):
        return self.layer.input_bias()

    def start(self):
        self.caches = []
        self.dU = self.db_rec = None

    def step(self, xz, states, keep: bool = True):
        """New states (a list) from xz (B, G*H) and the previous states."""
        layer = self.layer
        new, cache = steps.step(self.kind, xz, states, layer.recurrent_kernel, **layer.step_options())
        if keep:
            self.caches.append(cache)
        return new

    def step_backward(self, dstates):
        """From dL/d(new states) of the latest kept step: (dL/dxz, dL/d(previous states))."""
        layer = self.layer
        activation = getattr(layer, "activation", "tanh")
        dxz, dprev, dU, db_rec = steps.step_backward(self.kind, dstates, self.caches.pop(),
                                                     layer.recurrent_kernel, activation)
        self.dU = dU if self.dU is None else self.dU + dU
        if db_rec is not None:
            self.db_rec = db_rec if self.db_rec is None else self.db_rec + db_rec
        return dxz, dprev

    def finish(self):
        """Write dU (and the GRU recurrent bias) summed over the steps taken back."""
        grads = self.layer.grads
        grads[1][...] = 0 if self.dU is None else self.dU
        if self.layer.bias.ndim == 2:
            grads[2][1] = 0 if self.db_rec is None else self.db_rec
        self.dU = self.db_rec = None

    def input_grads(self, x, dxz):
        """dW and the input bias from inputs x (N, D) and dL/dxz (N, G*H) of all steps."""
        grads = self.layer.grads
        grads[0][...] = x.T @ dxz
        if self.layer.bias.ndim == 2:
            grads[2][0] = dxz.sum(axis=0)
        else:
            grads[2][...] = dxz.sum(axis=0)


# ---- what the encoder and the decoders share -----------------------------------------------------------


class EmbeddedStack(Layer):
    """An embedding, then ``layers`` recurrent layers of one kind (``cell``, with its
    ``cell_options``), with dropout on the connections between them: the common part of
    ``seq2seq.Encoder`` and the decoders. Seeds (``stack.part_seeds`` of ``seed``): 0 the
    embedding, 1 the output layer, 2 the attention, 3 its combining layer, then one per recurrent
    layer and one per dropout. Every part, dropout included, is in ``sublayers``."""

    PART_SEEDS = 4   # embedding, output, attention, combine: the seeds before the recurrent layers'

    def __init__(self, vocab_size: int, emb: int, hidden: int, cell: str = "lstm", layers: int = 1,
                 dropout: float = 0.0, cell_options: dict | None = None, **kwargs):
        super().__init__(**kwargs)
        owner = type(self).__name__
        self.cell_options = validate.options(owner, "cell_options", cell_options)
        self.vocab_size = validate.positive_int(owner, "vocab_size", vocab_size)
        self.emb, self.hidden = validate.positive_int(owner, "emb", emb), validate.positive_int(owner, "hidden", hidden)
        self.cell, self.layers = validate.cell(owner, "cell", cell), validate.positive_int(owner, "layers", layers)
        self.dropout = validate.rate(owner, "dropout", dropout)
        # one dropout before each recurrent layer and one after the top (a decoder's)
        self.seeds = part_seeds(self.seed, self.PART_SEEDS + 2 * self.layers + 1)
        self.embedding = Embedding(self.vocab_size, self.emb, seed=self.seeds[0],
                                   name=f"{self.name}_embedding")

    def _make_rnns(self, units: int, bidirectional: bool = False) -> list:
        first = self.PART_SEEDS
        return recurrent_layers(self.cell, units, self.seeds[first:first + self.layers],
                                bidirectional=bidirectional, name=self.name, **(self.cell_options or {}))

    def _make_drops(self, n: int) -> list:
        first = self.PART_SEEDS + self.layers
        return [Dropout(self.dropout, seed=seed) for seed in self.seeds[first:first + n]]


# ---- decoders -------------------------------------------------------------------------------------


class Decoder(EmbeddedStack):
    """Decoder without attention, over the whole target at once (teacher forcing).

    ``forward(tgt_in, init_states, peek=None)`` -> logits (B, T, V). ``peek`` (B, H): the
    encoder vector fed to every step (peeky decoder): input [e_t; peek], output Dense([s_t; peek]).
    ``backward(dlogits)`` -> (dL/d init_states, dL/d peek or None).
    """

    def __init__(self, vocab_size: int, emb: int, hidden: int, cell: str = "lstm", layers: int = 1,
                 peeky: bool = False, dropout: float = 0.0, cell_options: dict | None = None, **kwargs):
        self.peeky = validate.flag(type(self).__name__, "peeky", peeky)
        super().__init__(vocab_size, emb, hidden, cell, layers, dropout, cell_options, **kwargs)
        self.rnns = self._make_rnns(self.hidden)
        self.drops = self._make_drops(self.layers + 1)
        self.sublayers = [self.embedding, *self.rnns, *self._make_output(), *self.drops]
        self.steppers = [StepRNN(r) for r in self.rnns]

    def _make_output(self) -> list:
        """The layers after the recurrent ones (here the output Dense), as they go in ``sublayers``."""
        self.dense = Dense(self.vocab_size, seed=self.seeds[1], name=f"{self.name}_dense")
        return [self.dense]

    def _peek_cat(self, x, peek):
        """[x_t; peek] for every step t of x (B, T, D)."""
        xp = backend.xp
        return xp.concatenate([x, xp.broadcast_to(peek[:, None, :], (*x.shape[:2], peek.shape[-1]))], axis=-1)

    def _run_rnns(self, x, init_states):
        """The stacked recurrent layers over the whole sequence; returns the top outputs."""
        x, _ = stack_forward(self.rnns, self.drops[:self.layers], x, initial_state=[list(st) for st in init_states])
        return self.drops[-1].forward(x)

    def _rnns_backward(self, dy):
        """(dL/d the layers' input, each layer's dL/d(initial states))."""
        return stack_backward(self.rnns, self.drops[:self.layers], self.drops[-1].backward(dy))

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
                "cell": self.cell, "layers": self.layers, "peeky": self.peeky, "dropout": self.dropout,
                **({"cell_options": self.cell_options} if self.cell_options else {})}


class AttentionDecoder(Decoder):
    """Decoder with attention over the encoder outputs (``attention`` "luong" or "bahdanau").

    ``forward(tgt_in, init_states, peek, enc_outputs, src_mask)`` -> logits; after it,
    ``attention_weights`` (B, T, S) holds the weights of every target step. ``backward(dlogits)``
    -> (dL/d init_states, dL/d peek or None) and leaves dL/d enc_outputs in ``denc_outputs``.
    See the module docstring for the equations of both kinds.
    """

    def __init__(self, vocab_size: int, emb: int, hidden: int, cell: str = "lstm", layers: int = 1,
                 attention: str = "luong", score: str = "dot", attention_units: int | None = None,
                 peeky: bool = False, dropout: float = 0.0, cell_options: dict | None = None, **kwargs):
        owner = type(self).__name__
        self.attention = validate.choice(owner, "attention", attention, ("luong", "bahdanau"))
        self.score = validate.choice(owner, "score", score, ("dot", "general"))
        self.attention_units = validate.positive_int(owner, "attention_units",
                                                     hidden if attention_units is None else attention_units)
        super().__init__(vocab_size, emb, hidden, cell, layers, peeky, dropout, cell_options, **kwargs)

    def _make_output(self) -> list:
        seeds = self.seeds
        if self.attention == "luong":
            self.attn = LuongAttention(self.score, seed=seeds[2], name=f"{self.name}_attention")
            self.combine = Dense(self.hidden, activation="tanh", use_bias=False, seed=seeds[3],
                                 name=f"{self.name}_combine")
        else:
            self.attn = BahdanauAttention(self.attention_units, seed=seeds[2], name=f"{self.name}_attention")
        return [self.attn, *([self.combine] if self.attention == "luong" else []), *super()._make_output()]

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
        carry = [[xp.zeros((B, H), dtype=ds_out.dtype) for _ in range(kinds.N_STATES[self.cell])] for _ in range(L)]
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
