"""ONNX export run in onnxruntime against rnnlab (float32, 1e-5): language model (whole
sequence and streaming steps), Sequential classifiers, seq2seq encoder and decoder step."""
import os

import numpy as np
import pytest

import rnnlab
from rnnlab import interop
from rnnlab import layers as L
from rnnlab.interop import UnsupportedError
from rnnlab.models.lm import LanguageModel
from rnnlab.models.seq2seq import Seq2Seq, reverse_padded

TOL = 1e-5


def require_onnx():
    try:
        import onnx  # noqa: F401
        import onnxruntime
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("ONNX export tests need `pip install onnx onnxruntime`")
    return onnxruntime


def session(path):
    ort = require_onnx()
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("cell,layers,tie", [("lstm", 2, False), ("gru", 2, True), ("rnn", 1, False)])
def test_language_model_sequence_and_steps(tmp_path, cell, layers, tie):
    require_onnx()
    rng = np.random.default_rng(0)
    model = LanguageModel(17, emb=8, hidden=8, layers=layers, cell=cell, dropout=0.2, tie_weights=tie,
                          init_scale=0.4, seed=3).eval()
    (path,) = interop.export_onnx(model, tmp_path / "lm.onnx")
    sess = session(path)
    ids = rng.integers(0, 17, size=(3, 9))
    model.reset_states()
    expected = model.forward(ids)
    zeros = np.zeros((layers, 3, 8), np.float32)
    feeds = {"ids": ids, "h0": zeros, **({"c0": zeros} if cell == "lstm" else {})}
    names = [o.name for o in sess.get_outputs()]
    out = dict(zip(names, sess.run(None, feeds)))
    np.testing.assert_allclose(out["logits"], expected, rtol=0, atol=TOL)
    for k in range(layers):
        np.testing.assert_allclose(out["h"][k], model.states[k][0], rtol=0, atol=TOL)
        if cell == "lstm":
            np.testing.assert_allclose(out["c"][k], model.states[k][1], rtol=0, atol=TOL)
    # streaming: one token at a time, states fed back, gives the same logits
    h = {"h0": zeros, **({"c0": zeros} if cell == "lstm" else {})}
    for t in range(ids.shape[1]):
        step = dict(zip(names, sess.run(None, {"ids": ids[:, t:t + 1], **h})))
        np.testing.assert_allclose(step["logits"][:, 0], expected[:, t], rtol=0, atol=TOL)
        h = {"h0": step["h"], **({"c0": step["c"]} if cell == "lstm" else {})}


def _classifiers():
    return {
        "ids_bidirectional": rnnlab.Sequential([L.Input((7,)), L.Embedding(11, 5),
                                                L.Bidirectional(L.LSTM(4, return_sequences=True)), L.Dropout(0.2),
                                                L.Bidirectional(L.GRU(3, reset_after=False), merge_mode="ave"),
                                                L.Dense(2, activation="softmax")]),
        "stack": rnnlab.Sequential([L.Input((7, 3)), L.SimpleRNN(4, activation="relu", return_sequences=True),
                                    L.GRU(5, return_sequences=True, go_backwards=True),
                                    L.LSTM(3, return_sequences=True), L.Flatten(), L.Dense(1, activation="sigmoid")]),
        "backwards_last": rnnlab.Sequential([L.Input((6, 2)), L.LSTM(3, go_backwards=True),
                                             L.Dense(2, activation="tanh", use_bias=False)]),
        "merges": rnnlab.Sequential([L.Input((5, 2)),
                                     L.Bidirectional(L.SimpleRNN(3, return_sequences=True), merge_mode="mul"),
                                     L.Bidirectional(L.GRU(2, return_sequences=True), merge_mode="sum"),
                                     L.Bidirectional(L.LSTM(2), merge_mode="concat"), L.Dense(2)]),
    }


@pytest.mark.parametrize("name", sorted(_classifiers()))
def test_sequential(tmp_path, name):
    require_onnx()
    rng = np.random.default_rng(1)
    model = _classifiers()[name]
    for p in model.params:
        p[...] = rng.uniform(-0.7, 0.7, p.shape)
    model.eval()
    first = model.layers[0]
    x = rng.integers(0, 11, size=(4, 7)) if isinstance(first, L.Embedding) \
        else rng.standard_normal((4, *model.input_shape)).astype(np.float32)
    (path,) = interop.export_onnx(model, tmp_path / "clf.onnx")
    sess = session(path)
    (y,) = sess.run(None, {sess.get_inputs()[0].name: x})
    np.testing.assert_allclose(y, model.forward(x), rtol=0, atol=TOL)


SEQ2SEQ = [dict(cell="lstm", attention="none", layers=2, reverse=True),
           dict(cell="gru", attention="none", peeky=True, bidirectional=True),
           dict(cell="lstm", attention="luong", score="general", bidirectional=True, layers=2),
           dict(cell="gru", attention="luong", score="dot", reverse=True, peeky=True),
           dict(cell="lstm", attention="bahdanau", layers=2, reverse=True),
           dict(cell="rnn", attention="bahdanau", peeky=True, bidirectional=True)]


@pytest.mark.parametrize("options", SEQ2SEQ, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_seq2seq_encoder_and_decoder_step(tmp_path, options):
    require_onnx()
    rng = np.random.default_rng(2)
    model = Seq2Seq(13, 11, emb=6, hidden=8, seed=4, **options)
    src = rng.integers(4, 13, size=(3, 6))
    src[0, 4:] = 0
    src[2, 1:] = 0
    tgt = rng.integers(4, 11, size=(3, 5))
    model.forward(src, tgt)  # builds every layer
    model.eval()
    paths = interop.export_onnx(model, tmp_path / "s2s.onnx")
    assert [p.name for p in paths] == ["s2s.encoder.onnx", "s2s.decoder_step.onnx"]
    encoder, step = session(paths[0]), session(paths[1])
    enc = dict(zip([o.name for o in encoder.get_outputs()], encoder.run(None, {"src": src})))
    state = model.init_decode(src)
    k = 2 if options["cell"] == "lstm" else 1
    for layer in range(model.layers):
        np.testing.assert_allclose(enc["h"][layer], state[f"s{layer}_0"], rtol=0, atol=TOL)
        if k == 2:
            np.testing.assert_allclose(enc["c"][layer], state[f"s{layer}_1"], rtol=0, atol=TOL)
    if options["attention"] != "none":
        np.testing.assert_allclose(enc["enc_out"], state["att_keys"], rtol=0, atol=TOL)
    feeds = {"h": enc["h"], **({"c": enc["c"]} if k == 2 else {})}
    if options["attention"] != "none":
        feeds.update(enc_out=enc["enc_out"], mask_bias=enc["mask_bias"])
    if options.get("peeky"):
        feeds["peek"] = enc["h"][-1]
    names = [o.name for o in step.get_outputs()]
    tokens = np.full(3, model.bos_id, dtype=np.int64)
    for t in range(4):  # a few greedy steps, states fed back
        logp, state, weights = model.decode_step(state, tokens)
        out = dict(zip(names, step.run(None, {"tokens": tokens, **feeds})))
        np.testing.assert_allclose(out["logp"], logp, rtol=0, atol=TOL)
        if options["attention"] != "none":
            ours = out["weights"]  # in reading order; rnnlab gives source order
            if model.reverse:
                ours = reverse_padded(ours, (src != 0).sum(axis=1))
            np.testing.assert_allclose(ours, weights, rtol=0, atol=TOL)
        feeds["h"] = out["h_out"]
        if k == 2:
            feeds["c"] = out["c_out"]
        tokens = np.argmax(logp, axis=1).astype(np.int64)


def test_refusals(tmp_path):
    require_onnx()
    masked = rnnlab.Sequential([L.Input((5,)), L.Embedding(6, 2, mask_zero=True, name="padded"), L.LSTM(2)])
    with pytest.raises(UnsupportedError, match="padded.*mask_zero"):
        interop.export_onnx(masked, tmp_path / "m.onnx")
    with pytest.raises(UnsupportedError, match="a Dense cannot be exported"):
        interop.export_onnx(L.Dense(2), tmp_path / "d.onnx")
