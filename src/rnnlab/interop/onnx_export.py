"""rnnlab models as ONNX graphs (float32) with the standard ``LSTM``, ``GRU`` and ``RNN`` operators.

    from rnnlab.interop import export_onnx
    export_onnx(language_model, "lm.onnx")          # one graph, whole sequence or one step
    export_onnx(classifier, "clf.onnx")             # a Sequential
    export_onnx(seq2seq, "s2s.onnx")                # s2s.encoder.onnx + s2s.decoder_step.onnx

Built with the ``onnx`` package's helper API (the optional ``interop`` extra). What each graph
takes and gives (B batch, T time, S source length, L layers, H hidden units, V vocabulary):

- **LanguageModel**: inputs ``ids`` (B, T) int64, ``h0`` (L, B, H) [and ``c0`` for an LSTM];
  outputs ``logits`` (B, T, V), ``h`` (L, B, H) [``c``]. Zeros for ``h0`` and the whole text
  as ``ids`` is the whole-sequence model; T = 1 with the previous ``h`` (``c``) fed back is
  one step of streaming generation (the same graph, nothing recomputed).
- **Sequential**: input ``x`` (B, T, D) float32, or ``ids`` (B, T) int64 when the first layer
  is an Embedding; output ``y``. Dropout is the identity (inference).
- **Tagger**: inputs ``words`` (B, T), ``chars`` (B, T, W) int64 (right-padded with 0) [and,
  unidirectional, ``h0`` [``c0``] as for the language model, for streaming]; output ``logits``
  (B, T, tags) [``h`` [``c``]]. The character RNN is one bidirectional operator over all B*T
  word slots, each with its own ``sequence_lens``.
- **Seq2Seq encoder**: input ``src`` (B, S) int64, right-padded with 0 (as rnnlab's default
  mask ``src != 0``; the lengths go to the operators' ``sequence_lens``, and a ``reverse``
  model reverses each source within its length); outputs ``enc_out`` (B, S, H), ``h`` (L, B, H)
  [``c``], ``mask_bias`` (B, S) (0 on tokens, -1e9 on padding).
- **Seq2Seq decoder step**: inputs ``tokens`` (B,) int64, ``h`` [``c``], and for attention
  models ``enc_out``, ``mask_bias``; for peeky ones ``peek`` (B, H) (the encoder's top ``h``);
  outputs ``logp`` (B, V) (log-softmax), ``h_out`` [``c_out``], and ``weights`` (B, S) for
  attention (in the order the encoder read the source).

Weights, from rnnlab's Keras layout: ONNX wants W (dirs, G*H, D) = kernel^T and R (dirs, G*H,
H) = recurrent_kernel^T with its own gate orders, and B (dirs, 2*G*H) = [Wb; Rb]:

- LSTM: Keras i, f, c, o -> ONNX i, o, f, c; the bias goes to Wb, Rb = 0.
- GRU: Keras z, r, h = ONNX z, r, h. ``reset_after=True`` is ONNX ``linear_before_reset=1``
  with Wb, Rb = the input and recurrent bias rows; ``reset_after=False`` is
  ``linear_before_reset=0`` with the one bias as Wb and Rb = 0.
- RNN: one block; activation Tanh, Relu or Sigmoid.

A go_backwards layer is ``direction="reverse"`` (ONNX writes its outputs in input order,
Keras/rnnlab in reading order: the graph reverses them back); a Bidirectional is
``direction="bidirectional"``. Anything else (a mask in a Sequential, an Activation layer,
another model) raises ``UnsupportedError`` naming it.

**Adding a model** is one function ``_export_<name>(model) -> [(suffix, Graph)]`` registered in
``EXPORTERS``: the pieces ``embed``, ``recurrent`` (time-major, with ``sequence_lens``),
``dense`` and ``sequence_output`` of a ``Graph`` do the work.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import UnsupportedError, require

OPSET = 17
_NEG = -1e9
_INT64_MIN = -(2 ** 63) + 1
# ONNX gate block k holds Keras gate block ONNX_ORDER[kind][k]
ONNX_ORDER = {"lstm": [0, 3, 1, 2], "gru": [0, 1, 2], "rnn": [0]}
_ACTIVATIONS = {"tanh": "Tanh", "relu": "Relu", "sigmoid": "Sigmoid"}


def _host32(a) -> np.ndarray:
    from ..backend import to_numpy

    return np.ascontiguousarray(to_numpy(a), dtype=np.float32)


def onnx_weights(layer):
    """(W, R, B, attributes) of one rnnlab recurrent layer for the ONNX operator (one direction:
    W (1, G*H, D), R (1, G*H, H), B (1, 2*G*H))."""
    from ..layers.kinds import GATES, cell_kind

    kind = cell_kind(layer)
    kernel, recurrent, bias = (_host32(w) for w in layer.get_weights()[:3])
    G, H = GATES[kind], layer.units

    def reorder(a):  # a (G*H, ...) gate blocks on the rows
        blocks = np.split(a, G, axis=0)
        return np.concatenate([blocks[k] for k in ONNX_ORDER[kind]], axis=0)

    attrs = {}
    if kind == "gru" and bias.ndim == 2:
        wb, rb = bias[0], bias[1]
        attrs["linear_before_reset"] = 1
    else:
        wb, rb = bias, np.zeros_like(bias)
        if kind == "gru":
            attrs["linear_before_reset"] = 0
    if kind == "rnn":
        if layer.activation not in _ACTIVATIONS:
            raise UnsupportedError(f"export_onnx: {layer.describe()} has activation {layer.activation!r}")
        attrs["activations"] = [_ACTIVATIONS[layer.activation]]
    W = reorder(kernel.T)[None]
    R = reorder(recurrent.T)[None]
    B = np.concatenate([reorder(wb), reorder(rb)])[None]
    assert W.shape == (1, G * H, kernel.shape[0]) and R.shape == (1, G * H, H)
    return W, R, B, attrs


class Graph:
    """A small builder over ``onnx.helper``: named constants, nodes, inputs and outputs."""

    def __init__(self, name: str):
        self.onnx = require("onnx", "ONNX export")
        self.name, self.nodes, self.initializers, self.inputs, self.outputs = name, [], [], [], []
        self._count = 0
        self.metadata: dict[str, str] = {}

    def _fresh(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, array, hint: str = "const") -> str:
        name = self._fresh(hint)
        self.initializers.append(self.onnx.numpy_helper.from_array(np.asarray(array), name))
        return name

    def ints(self, values, hint="shape") -> str:
        return self.const(np.asarray(values, dtype=np.int64), hint)

    def op(self, op_type: str, inputs, outputs: int | list = 1, **attrs):
        names = [self._fresh(op_type.lower()) for _ in range(outputs)] if isinstance(outputs, int) else outputs
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), names, **attrs))
        return names[0] if len(names) == 1 else names

    def input(self, name, elem, shape):
        self.inputs.append(self.onnx.helper.make_tensor_value_info(name, elem, shape))
        return name

    def output(self, source: str, name: str, elem, shape):
        self.op("Identity", [source], [name])
        self.outputs.append(self.onnx.helper.make_tensor_value_info(name, elem, shape))

    def model(self):
        helper = self.onnx.helper
        graph = helper.make_graph(self.nodes, self.name, self.inputs, self.outputs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="rnnlab")
        for key, value in self.metadata.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        self.onnx.checker.check_model(model)
        return model

    # ---- pieces ---------------------------------------------------------------------------------
    @property
    def FLOAT(self):
        return self.onnx.TensorProto.FLOAT

    @property
    def INT64(self):
        return self.onnx.TensorProto.INT64

    def embed(self, embedding, ids: str) -> str:
        """ids (...) -> vectors (..., E): a Gather of the embedding matrix."""
        return self.op("Gather", [self.const(_host32(embedding.get_weights()[0]), "embeddings"), ids])

    def dense(self, layer, x: str, activation: str | None = None) -> str:
        """x (..., D) -> act(x W + b): an rnnlab Dense (or kernel/bias arrays)."""
        weights = layer.get_weights()
        y = self.op("MatMul", [x, self.const(_host32(weights[0]), "kernel")])
        if len(weights) > 1:
            y = self.op("Add", [y, self.const(_host32(weights[1]), "bias")])
        return self.activation(y, activation if activation is not None else layer.activation)

    def activation(self, x, name):
        if name in (None, "linear"):
            return x
        if name == "softmax":
            return self.op("Softmax", [x], axis=-1)
        if name not in _ACTIVATIONS:
            raise UnsupportedError(f"export_onnx: activation {name!r}")
        return self.op(_ACTIVATIONS[name], [x])

    def recurrent(self, directions, x_tm: str, init_h: str = "", init_c: str = "", seq_lens: str = ""):
        """One ONNX LSTM/GRU/RNN over time-major x (T, B, D): ``directions`` is [layer] or
        [forward layer, backward layer]; a single go_backwards layer runs ``reverse``.
        Returns (Y (T, dirs, B, H), Y_h (dirs, B, H), Y_c or None)."""
        from ..layers.kinds import cell_kind

        kind = cell_kind(directions[0])
        parts = [onnx_weights(layer) for layer in directions]
        W, R, B = (np.concatenate([p[i] for p in parts]) for i in range(3))
        attrs = dict(parts[0][3])
        if "activations" in attrs:  # one per direction
            attrs["activations"] = attrs["activations"] * len(directions)
        if len(directions) == 2:
            direction = "bidirectional"
        else:
            direction = "reverse" if directions[0].go_backwards else "forward"
        op = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}[kind]
        inputs = [x_tm, self.const(W, "W"), self.const(R, "R"), self.const(B, "B"), seq_lens, init_h]
        if kind == "lstm":
            inputs.append(init_c)
        while inputs and inputs[-1] == "":
            inputs.pop()  # trailing optional inputs are left out
        outs = self.op(op, inputs, 3 if kind == "lstm" else 2, hidden_size=directions[0].units,
                       direction=direction, **attrs)
        return outs[0], outs[1], (outs[2] if kind == "lstm" else None)

    def sequence_output(self, Y: str, merge_mode=None, reverse_time=False) -> str:
        """Y (T, dirs, B, H) -> (B, T, dirs*H) (concat) or (B, T, H) merged."""
        if reverse_time:
            Y = self.op("Slice", [Y, self.ints([-1]), self.ints([_INT64_MIN]), self.ints([0]), self.ints([-1])])
        y = self.op("Transpose", [Y], perm=[2, 0, 1, 3])           # (B, T, dirs, H)
        if merge_mode in (None, "concat"):
            return self.op("Reshape", [y, self.ints([0, 0, -1])])
        forward = self.op("Gather", [y, self.ints(0)], axis=2)
        backward = self.op("Gather", [y, self.ints(1)], axis=2)
        return self.merge(forward, backward, merge_mode)

    def state_output(self, Y_h: str, merge_mode=None) -> str:
        """Y_h (dirs, B, H) -> (B, dirs*H) (concat) or (B, H) merged."""
        if merge_mode in (None, "concat"):
            return self.op("Reshape", [self.op("Transpose", [Y_h], perm=[1, 0, 2]), self.ints([0, -1])])
        forward = self.op("Gather", [Y_h, self.ints(0)], axis=0)
        backward = self.op("Gather", [Y_h, self.ints(1)], axis=0)
        return self.merge(forward, backward, merge_mode)

    def merge(self, a, b, mode):
        if mode == "sum":
            return self.op("Add", [a, b])
        if mode == "mul":
            return self.op("Mul", [a, b])
        if mode == "ave":
            return self.op("Mul", [self.op("Add", [a, b]), self.const(np.float32(0.5), "half")])
        raise UnsupportedError(f"export_onnx: Bidirectional merge_mode={mode!r}")

    def time_major(self, x: str) -> str:
        return self.op("Transpose", [x], perm=[1, 0, 2])

    def layer_state(self, states: str, k: int) -> str:
        """(L, B, H) -> layer k's (1, B, H)."""
        return self.op("Slice", [states, self.ints([k]), self.ints([k + 1]), self.ints([0])])


# ---- the models ---------------------------------------------------------------------------------


def _export_language_model(model):
    from ..layers.kinds import cell_kind

    g = Graph("rnnlab_language_model")
    kind = cell_kind(model.rnns[0])
    ids = g.input("ids", g.INT64, ["batch", "time"])
    h0 = g.input("h0", g.FLOAT, [model.layers, "batch", model.hidden])
    c0 = g.input("c0", g.FLOAT, [model.layers, "batch", model.hidden]) if kind == "lstm" else ""
    x = g.time_major(g.embed(model.embedding, ids))
    hs, cs = [], []
    for k, rnn in enumerate(model.rnns):
        Y, Y_h, Y_c = g.recurrent([rnn], x, g.layer_state(h0, k), g.layer_state(c0, k) if c0 else "")
        x = g.op("Squeeze", [Y, g.ints([1])])                     # (T, B, H)
        hs.append(Y_h)
        cs.append(Y_c)
    h = g.op("Transpose", [x], perm=[1, 0, 2])                    # (B, T, H)
    output = _lm_output(model)
    if output is None:  # tied: logits = h E^T + b
        E = _host32(model.embedding.get_weights()[0])
        logits = g.op("Add", [g.op("MatMul", [h, g.const(E.T.copy(), "tied_kernel")]),
                              g.const(_host32(model.output_bias), "output_bias")])
    else:
        logits = g.dense(output, h)
    g.output(logits, "logits", g.FLOAT, ["batch", "time", model.vocab_size])
    g.output(g.op("Concat", hs, axis=0), "h", g.FLOAT, [model.layers, "batch", model.hidden])
    if kind == "lstm":
        g.output(g.op("Concat", cs, axis=0), "c", g.FLOAT, [model.layers, "batch", model.hidden])
    return [("", g)]


def _lm_output(model):
    from .pytorch import lm_output_layer

    return lm_output_layer(model)


def _export_sequential(model):
    from ..layers import core
    from ..layers.bidirectional import Bidirectional
    from ..layers.recurrent import _Recurrent

    if not model.built:
        raise ValueError(f"export_onnx: {model.describe()} is not built: give it an Input layer or run forward once")
    layers = model.layers
    g = Graph("rnnlab_sequential")
    shape = tuple(model.input_shape)
    if layers and isinstance(layers[0], core.Embedding):
        x = g.input("ids", g.INT64, ["batch", *(d if d is not None else "time" for d in shape)])
    else:
        x = g.input("x", g.FLOAT, ["batch", *(d if d is not None else "time" for d in shape)])
    for layer in layers:
        if isinstance(layer, core.Embedding):
            if layer.mask_zero:
                raise UnsupportedError(f"export_onnx: {layer.describe()} has mask_zero=True; the exported "
                                       f"Sequential carries no mask")
            x = g.embed(layer, x)
        elif isinstance(layer, (_Recurrent, Bidirectional)):
            bidirectional = isinstance(layer, Bidirectional)
            first = layer.forward_layer if bidirectional else layer
            if first.stateful or first.return_state:
                raise UnsupportedError(f"export_onnx: {layer.describe()} is stateful or returns its state")
            if bidirectional and first.go_backwards:
                raise UnsupportedError(f"export_onnx: {layer.describe()} wraps a go_backwards layer")
            directions = [layer.forward_layer, layer.backward_layer] if bidirectional else [layer]
            Y, Y_h, _ = g.recurrent(directions, g.time_major(x))
            merge = layer.merge_mode if bidirectional else None
            if first.return_sequences:
                x = g.sequence_output(Y, merge, reverse_time=first.go_backwards and not bidirectional)
            else:
                x = g.state_output(Y_h, merge)
        elif isinstance(layer, core.Dense):
            x = g.dense(layer, x)
        elif isinstance(layer, core.Flatten):
            x = g.op("Flatten", [x], axis=1)
        elif isinstance(layer, core.Dropout):
            pass  # inference
        elif isinstance(layer, core.Activation):
            x = g.activation(x, layer.activation)
        else:
            raise UnsupportedError(f"export_onnx: {layer.describe()} ({type(layer).__name__}) cannot be exported "
                                   f"(Embedding, SimpleRNN, LSTM, GRU, Bidirectional, Dense, Flatten, Dropout)")
        shape = layer.compute_output_shape(shape)
    g.output(x, "y", g.FLOAT, ["batch", *(d if d is not None else "time" for d in shape)])
    return [("", g)]


def _export_tagger(model):
    """The Tagger (models/tagger.py) as one graph: inputs ``words`` (B, T) int64 and ``chars``
    (B, T, W) int64, both right-padded with 0; output ``logits`` (B, T, tags) (at padded words:
    the head's bias, not meaningful). A unidirectional tagger also takes ``h0`` (L, B, H) [``c0``]
    and gives ``h`` [``c``]: zeros and the whole sentence, or one word (T = 1) at a time with
    the states fed back, as ``Tagger.step`` streams.

    The character RNN reads every word slot of the batch (B*T rows of W letters, each with its
    own ``sequence_lens``) with one bidirectional operator; its final states (forward, backward)
    are zeroed at padded words and at words without letters, as rnnlab does. ONNX allows no
    zero-length sequence, so those slots read one (padding) letter, then are zeroed."""
    from ..layers.kinds import cell_kind

    g = Graph("rnnlab_tagger")
    kind = cell_kind(model.encoder.rnns[0].forward_layer if model.bidirectional else model.encoder.rnns[0])
    words = g.input("words", g.INT64, ["batch", "time"])
    chars = g.input("chars", g.INT64, ["batch", "time", "letters"])
    streaming = not model.bidirectional
    if streaming:
        state_shape = [model.layers, "batch", model.hidden]
        h0 = g.input("h0", g.FLOAT, state_shape)
        c0 = g.input("c0", g.FLOAT, state_shape) if kind == "lstm" else ""
    word_mask = g.op("Not", [g.op("Equal", [words, g.ints(0)])])                           # (B, T)
    lengths = g.op("ReduceSum", [g.op("Cast", [word_mask], to=g.INT64), g.ints([1])], keepdims=0)
    seq_lens = g.op("Cast", [lengths], to=g.onnx.TensorProto.INT32)                         # (B,)

    # the character RNN over every word slot: (B*T, W) letters -> (B*T, 2C) final states
    word_chars = g.op("Flatten", [chars], axis=2)                                           # (B*T, W)
    letters = g.op("ReduceSum", [g.op("Cast", [g.op("Not", [g.op("Equal", [word_chars, g.ints(0)])])], to=g.INT64),
                                 g.ints([1])], keepdims=0)                                  # (B*T,)
    char_lens = g.op("Cast", [g.op("Max", [letters, g.ints(1)])], to=g.onnx.TensorProto.INT32)
    char_x = g.time_major(g.embed(model.char_embedding, word_chars))                        # (W, B*T, Ce)
    _, Y_h, _ = g.recurrent([model.char_rnn.forward_layer, model.char_rnn.backward_layer], char_x,
                            seq_lens=char_lens)
    real = g.op("And", [g.op("Reshape", [word_mask, g.ints([-1])]), g.op("Greater", [letters, g.ints(0)])])
    keep = g.op("Unsqueeze", [g.op("Cast", [real], to=g.FLOAT), g.ints([1])])               # (B*T, 1)
    features = g.op("Mul", [g.state_output(Y_h, model.char_rnn.merge_mode), keep])
    bt = g.op("Shape", [words])
    features = g.op("Reshape", [features, g.op("Concat", [bt, g.ints([-1])], axis=0)])      # (B, T, 2C)

    # the sentence encoder and the head
    x = g.time_major(g.op("Concat", [g.embed(model.word_embedding, words), features], axis=-1))
    hs, cs = [], []
    for k, rnn in enumerate(model.encoder.rnns):
        if model.bidirectional:
            Y, _, _ = g.recurrent([rnn.forward_layer, rnn.backward_layer], x, seq_lens=seq_lens)
        else:
            Y, Y_h, Y_c = g.recurrent([rnn], x, g.layer_state(h0, k), g.layer_state(c0, k) if c0 else "",
                                      seq_lens=seq_lens)
            hs.append(Y_h)
            cs.append(Y_c)
        x = g.op("Reshape", [g.op("Transpose", [Y], perm=[0, 2, 1, 3]), g.ints([0, 0, -1])])   # (T, B, dirs*H)
    logits = g.dense(model.head, g.op("Transpose", [x], perm=[1, 0, 2]))
    g.output(logits, "logits", g.FLOAT, ["batch", "time", model.tags])
    if streaming:
        g.output(g.op("Concat", hs, axis=0), "h", g.FLOAT, state_shape)
        if kind == "lstm":
            g.output(g.op("Concat", cs, axis=0), "c", g.FLOAT, state_shape)
    return [("", g)]


EXPORTERS = {"LanguageModel": _export_language_model, "Sequential": _export_sequential, "Tagger": _export_tagger}


def _exporter(model):
    from .onnx_seq2seq import export_seq2seq

    exporters = {**EXPORTERS, "Seq2Seq": export_seq2seq}
    for cls in type(model).__mro__:
        if cls.__name__ in exporters:
            return exporters[cls.__name__]
    raise UnsupportedError(f"export_onnx: a {type(model).__name__} cannot be exported "
                           f"(supported: {', '.join(exporters)})")


def export_onnx(model, path, metadata: dict | None = None, overwrite: bool = False, inputs=()) -> list[Path]:
    """Write ``model`` as ONNX at ``path`` (a Seq2Seq as ``<stem>.encoder.onnx`` and
    ``<stem>.decoder_step.onnx`` beside it); ``metadata`` (str -> str, e.g. a vocabulary as
    JSON) goes into each file's ``metadata_props``. Returns the paths written. Every file is
    checked by the output rule (``fileio.check_output``: an existing file only with
    ``overwrite``, never one of ``inputs``) before any is written, and written atomically."""
    import json

    from ..fileio import check_output, write_output

    require("onnx", "ONNX export")
    path = Path(path)
    graphs = [(path if not suffix else path.with_name(f"{path.stem}.{suffix}{path.suffix or '.onnx'}"), graph)
              for suffix, graph in _exporter(model)(model)]
    for target, _ in graphs:
        check_output(target, overwrite=overwrite, inputs=inputs)
    written = []
    for target, graph in graphs:
        graph.metadata.update({"rnnlab_model": json.dumps(_model_spec(model))})
        graph.metadata.update(metadata or {})
        proto = graph.model()
        written.append(write_output(target, lambda f: f.write(proto.SerializeToString()), overwrite=overwrite,
                                    inputs=inputs))
    return written


def _model_spec(model) -> dict:
    from ..layers.base import layer_to_dict

    return layer_to_dict(model)
