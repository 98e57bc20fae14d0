"""ONNX export of a ``Seq2Seq``: the encoder and one decoder step, two graphs.

The inputs and outputs of both are listed in ``onnx_export``'s docstring. A greedy or beam
decoder runs the encoder once, then the step graph once per output token, feeding ``h_out``
(``c_out``) back as ``h`` (``c``), as ``rnnlab.search`` drives ``Seq2Seq.decode_step``.

Equations of the step (as ``AttentionDecoder.step``), x = embedding of the previous token
([x; peek] for a peeky decoder), s = the top layer's new h:

- no attention: logits = Dense(s)
- Luong: a = softmax(s K'^T + mask_bias) with K' = K (dot) or K W^T (general), c = a K,
  logits = Dense(tanh([c; s] W_c))
- Bahdanau: c, a from the *previous* top h: a = softmax(v . tanh(h W_q + K W_k) + mask_bias),
  the first layer reads [x; c], logits = Dense([s; c])

(peeky: the output layer reads [...; peek]); logp = log_softmax(logits).
"""
from __future__ import annotations

import numpy as np

from . import UnsupportedError
from .onnx_export import _NEG, Graph, _host32


def export_seq2seq(model):
    from ..layers.core import Dropout

    for part in (model.encoder, model.decoder):
        for layer in part.sublayers:
            if not layer.built and not isinstance(layer, Dropout):  # a Bahdanau decoder's middle ones never run
                raise ValueError(f"export_onnx: {layer.describe()} is not built yet: run the model forward "
                                 f"on one batch (or load a trained checkpoint) first")
    return [("encoder", _encoder(model)), ("decoder_step", _decoder_step(model))]


def _encoder(model):
    from ..layers.kinds import cell_kind

    enc = model.encoder
    g = Graph("rnnlab_seq2seq_encoder")
    H, L = model.hidden, model.layers
    src = g.input("src", g.INT64, ["batch", "source_len"])
    mask = g.op("Not", [g.op("Equal", [src, g.ints(0)])])
    lengths = g.op("ReduceSum", [g.op("Cast", [mask], to=g.INT64), g.ints([1])], keepdims=0)   # (B,)
    seq_lens = g.op("Cast", [lengths], to=g.onnx.TensorProto.INT32)
    if model.reverse:  # each row's first `length` ids reversed, padding left at the end
        steps = g.op("Gather", [g.op("Shape", [src]), g.ints(1)])
        j = g.op("Unsqueeze", [g.op("Range", [g.ints(0), steps, g.ints(1)]), g.ints([0])])   # (1, S)
        n = g.op("Unsqueeze", [lengths, g.ints([1])])                                           # (B, 1)
        index = g.op("Where", [g.op("Less", [j, n]), g.op("Sub", [g.op("Sub", [n, g.ints(1)]), j]),
                               g.op("Expand", [j, g.op("Shape", [src])])])
        src = g.op("GatherElements", [src, index], axis=1)
    x = g.time_major(g.embed(enc.embedding, src))
    hs, cs = [], []
    for rnn in enc.rnns:
        directions = [rnn.forward_layer, rnn.backward_layer] if model.bidirectional else [rnn]
        Y, Y_h, Y_c = g.recurrent(directions, x, seq_lens=seq_lens)
        if model.bidirectional:  # (S, 2, B, h) -> (S, B, 2h); states [h_f | h_b] -> (1, B, 2h)
            x = g.op("Reshape", [g.op("Transpose", [Y], perm=[0, 2, 1, 3]), g.ints([0, 0, -1])])
            hs.append(g.op("Unsqueeze", [g.state_output(Y_h), g.ints([0])]))
            if Y_c is not None:
                cs.append(g.op("Unsqueeze", [g.state_output(Y_c), g.ints([0])]))
        else:
            x = g.op("Squeeze", [Y, g.ints([1])])
            hs.append(Y_h)
            cs.append(Y_c)
    g.output(g.op("Transpose", [x], perm=[1, 0, 2]), "enc_out", g.FLOAT, ["batch", "source_len", H])
    g.output(g.op("Concat", hs, axis=0), "h", g.FLOAT, [L, "batch", H])
    if cell_kind(model.cell) == "lstm":
        g.output(g.op("Concat", cs, axis=0), "c", g.FLOAT, [L, "batch", H])
    bias = g.op("Where", [mask, g.const(np.float32(0.0), "zero"), g.const(np.float32(_NEG), "neg")])
    g.output(bias, "mask_bias", g.FLOAT, ["batch", "source_len"])
    return g


def _luong(g, attn, s, enc_out, mask_bias):
    keys = enc_out
    if attn.score == "general":  # K W^T
        keys = g.op("MatMul", [enc_out, g.const(_host32(attn.kernel).T.copy(), "luong_kernel_t")])
    scores = g.op("MatMul", [g.op("Unsqueeze", [s, g.ints([1])]), g.op("Transpose", [keys], perm=[0, 2, 1])])
    return _attend(g, g.op("Squeeze", [scores, g.ints([1])]), enc_out, mask_bias)


def _bahdanau(g, attn, q, enc_out, mask_bias):
    query = g.op("Unsqueeze", [g.op("MatMul", [q, g.const(_host32(attn.query_kernel), "query_kernel")]),
                               g.ints([1])])                                                   # (B, 1, A)
    keys = g.op("MatMul", [enc_out, g.const(_host32(attn.key_kernel), "key_kernel")])         # (B, S, A)
    e = g.op("Tanh", [g.op("Add", [query, keys])])
    scores = g.op("MatMul", [e, g.const(_host32(attn.score_vector), "score_vector")])         # (B, S)
    return _attend(g, scores, enc_out, mask_bias)


def _attend(g, scores, enc_out, mask_bias):
    """softmax over the source of scores (B, S) + mask_bias -> (context (B, Hk), weights (B, S))."""
    a = g.op("Softmax", [g.op("Add", [scores, mask_bias])], axis=-1)
    context = g.op("Squeeze", [g.op("MatMul", [g.op("Unsqueeze", [a, g.ints([1])]), enc_out]), g.ints([1])])
    return context, a


def _decoder_step(model):
    from ..layers.kinds import cell_kind

    dec = model.decoder
    attention = model.attention
    if attention not in ("none", "luong", "bahdanau"):
        raise UnsupportedError(f"export_onnx: attention {attention!r}")
    lstm = cell_kind(model.cell) == "lstm"
    H, L = model.hidden, model.layers
    g = Graph("rnnlab_seq2seq_decoder_step")
    tokens = g.input("tokens", g.INT64, ["batch"])
    h = g.input("h", g.FLOAT, [L, "batch", H])
    c = g.input("c", g.FLOAT, [L, "batch", H]) if lstm else ""
    if attention != "none":
        enc_out = g.input("enc_out", g.FLOAT, ["batch", "source_len", model.encoder.hidden])
        mask_bias = g.input("mask_bias", g.FLOAT, ["batch", "source_len"])
    peek = g.input("peek", g.FLOAT, ["batch", H]) if model.peeky else None
    x = g.embed(dec.embedding, tokens)                                                      # (B, E)
    if peek:
        x = g.op("Concat", [x, peek], axis=1)
    if attention == "bahdanau":
        previous = g.op("Gather", [h, g.ints(L - 1)], axis=0)
        context, weights = _bahdanau(g, dec.attn, previous, enc_out, mask_bias)
        x = g.op("Concat", [x, context], axis=1)
    hs, cs = [], []
    for k, rnn in enumerate(dec.rnns):
        _, Y_h, Y_c = g.recurrent([rnn], g.op("Unsqueeze", [x, g.ints([0])]), g.layer_state(h, k),
                                  g.layer_state(c, k) if lstm else "")
        hs.append(Y_h)
        cs.append(Y_c)
        x = g.op("Squeeze", [Y_h, g.ints([0])])                                             # (B, H)
    if attention == "luong":
        context, weights = _luong(g, dec.attn, x, enc_out, mask_bias)
        out = g.dense(dec.combine, g.op("Concat", [context, x], axis=1))
    elif attention == "bahdanau":
        out = g.op("Concat", [x, context], axis=1)
    else:
        out = x
    if peek:
        out = g.op("Concat", [out, peek], axis=1)
    logp = g.op("LogSoftmax", [g.dense(dec.dense, out)], axis=-1)
    g.output(logp, "logp", g.FLOAT, ["batch", model.tgt_vocab_size])
    g.output(g.op("Concat", hs, axis=0), "h_out", g.FLOAT, [L, "batch", H])
    if lstm:
        g.output(g.op("Concat", cs, axis=0), "c_out", g.FLOAT, [L, "batch", H])
    if attention != "none":
        g.output(weights, "weights", g.FLOAT, ["batch", "source_len"])
    return g
