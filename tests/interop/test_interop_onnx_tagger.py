"""ONNX export of the Tagger (word embedding + char RNN per word + BiLSTM or one way + Dense per
step) run in onnxruntime against rnnlab (float32, 1e-5), padded batches and streaming steps."""
import numpy as np
import pytest

from rnnlab import interop
from rnnlab.models.tagger import Tagger
from test_interop_onnx import TOL, require_onnx, session


def padded_batch(rng, B=3, T=6, W=5, vocab=20, chars=12):
    """Right-padded words and letters; rows of different lengths, words of different lengths."""
    words = np.zeros((B, T), np.int64)
    letters = np.zeros((B, T, W), np.int64)
    for b, n in enumerate([T, T - 2, 1][:B]):
        words[b, :n] = rng.integers(1, vocab, size=n)
        for t in range(n):
            k = rng.integers(1, W + 1)
            letters[b, t, :k] = rng.integers(1, chars, size=k)
    return words, letters


@pytest.mark.parametrize("cell,bidirectional,layers", [("lstm", True, 2), ("gru", True, 1), ("lstm", False, 2),
                                                       ("gru", False, 1), ("rnn", False, 1)])
def test_tagger_export_matches_rnnlab(tmp_path, cell, bidirectional, layers):
    require_onnx()
    rng = np.random.default_rng(0)
    model = Tagger(20, 12, 4, emb=6, char_emb=5, char_hidden=3, hidden=7, layers=layers, cell=cell,
                   bidirectional=bidirectional, dropout=0.3, seed=1).eval()
    (path,) = interop.export_onnx(model, tmp_path / "tagger.onnx")
    sess = session(path)
    names = [o.name for o in sess.get_outputs()]
    words, letters = padded_batch(rng)
    expected = model.forward(words, letters)
    real = words != 0
    feeds = {"words": words, "chars": letters}
    if not bidirectional:
        zeros = np.zeros((layers, 3, 7), np.float32)
        feeds.update(h0=zeros, **({"c0": zeros} if cell == "lstm" else {}))
    out = dict(zip(names, sess.run(None, feeds)))
    assert out["logits"].shape == expected.shape
    np.testing.assert_allclose(out["logits"][real], expected[real], rtol=0, atol=TOL)
    if bidirectional:
        assert names == ["logits"]
        return
    # streaming: one word at a time with the states fed back, as Tagger.step
    state, onnx_state = None, {k: v for k, v in feeds.items() if k in ("h0", "c0")}
    for t in range(words.shape[1]):
        logits, state = model.step(np.maximum(words[:, t], 1), letters[:, t], state)
        step = dict(zip(names, sess.run(None, {"words": np.maximum(words[:, t:t + 1], 1),
                                               "chars": letters[:, t:t + 1], **onnx_state})))
        np.testing.assert_allclose(step["logits"][:, 0], logits, rtol=0, atol=TOL)
        onnx_state = {"h0": step["h"], **({"c0": step["c"]} if cell == "lstm" else {})}
