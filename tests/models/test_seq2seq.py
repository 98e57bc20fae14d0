"""Seq2seq models: end-to-end float64 gradient checks of every variant, and behaviour."""
import numpy as np
import pytest

from gradcheck import numerical_grad, rel_error
from rnnlab.search import beam_search, greedy_decode
from rnnlab.models.seq2seq import Seq2Seq, reverse_padded

V_SRC, V_TGT = 7, 6
SRC = np.array([[4, 5, 6, 4, 5], [5, 6, 4, 0, 0], [6, 0, 0, 0, 0]])
TGT_IN = np.array([[2, 4, 5, 1], [2, 5, 5, 4], [2, 1, 0, 0]])

VARIANTS = {
    "baseline": dict(),
    "reverse_gru": dict(cell="gru", reverse=True),
    "peeky_2layers": dict(peeky=True, layers=2),
    "bidirectional": dict(bidirectional=True),
    "bidirectional_rnn_2layers": dict(bidirectional=True, cell="rnn", layers=2),
    "luong_dot": dict(attention="luong"),
    "luong_general_gru_reverse": dict(attention="luong", score="general", cell="gru", reverse=True),
    "luong_peeky_2layers": dict(attention="luong", peeky=True, layers=2),
    "bahdanau": dict(attention="bahdanau"),
    "bahdanau_gru_2layers": dict(attention="bahdanau", cell="gru", layers=2),
    "bahdanau_rnn_peeky_reverse": dict(attention="bahdanau", cell="rnn", peeky=True, reverse=True),
    "bahdanau_bidirectional": dict(attention="bahdanau", bidirectional=True),
    # the step-by-step (Bahdanau) decoder runs the step equations of layers/steps.py, so it
    # honours every option of its layers: a SimpleRNN's activation, GRU(reset_after=False)
    "bahdanau_rnn_relu": dict(attention="bahdanau", cell="rnn", cell_options={"activation": "relu"}),
    "bahdanau_rnn_sigmoid_2layers": dict(attention="bahdanau", cell="rnn", layers=2,
                                         cell_options={"activation": "sigmoid"}),
    "bahdanau_gru_reset_before_2layers": dict(attention="bahdanau", cell="gru", layers=2,
                                              cell_options={"reset_after": False}),
    "luong_gru_reset_before": dict(attention="luong", cell="gru", cell_options={"reset_after": False}),
}


def tiny(**kwargs):
    """A tiny model with its weights redrawn N(0, 0.5): the default small embeddings make all
    encoder states nearly equal, and then the attention gradients are too small to check."""
    model = Seq2Seq(V_SRC, V_TGT, emb=3, hidden=4, seed=0, **kwargs)
    model.forward(SRC[:1], TGT_IN[:1])  # build
    rng = np.random.default_rng(7)
    model.set_weights([rng.normal(0.0, 0.5, w.shape) for w in model.get_weights()])
    return model


@pytest.mark.parametrize("variant", [pytest.param(v, marks=pytest.mark.slow) if v.endswith("2layers") else v
                                     for v in sorted(VARIANTS)])   # two-layer variants: seconds each
def test_seq2seq_gradients_end_to_end(float64, variant):
    model = tiny(**VARIANTS[variant])
    logits = model.forward(SRC, TGT_IN)
    assert logits.shape == (3, 4, V_TGT)
    r = np.random.default_rng(1).standard_normal(logits.shape)

    def loss():
        return float((model.forward(SRC, TGT_IN) * r).sum())

    loss()
    model.backward(r)
    analytic = [g.copy() for g in model.grads]
    # eps 1e-5: some attention gradients are ~1e-4, below the rounding floor of eps 1e-6
    errors = [rel_error(a, numerical_grad(loss, p, eps=1e-5)) for a, p in zip(analytic, model.params)]
    assert len(errors) >= 7
    assert max(errors) < 1e-6, dict(enumerate(errors))


def test_padding_of_the_source_changes_nothing(float64):
    """A sentence gives the same logits alone and in a padded batch (masks everywhere)."""
    for variant in ("baseline", "luong_dot", "bahdanau_bidirectional", "reverse_gru"):
        model = tiny(**VARIANTS[variant])
        batch = model.forward(SRC, TGT_IN)
        alone = model.forward(SRC[1:2, :3], TGT_IN[1:2])
        np.testing.assert_allclose(batch[1], alone[0], atol=1e-12, err_msg=variant)


def test_reverse_reads_the_source_backwards_within_its_length():
    x = np.array([[1, 2, 3, 0], [4, 5, 0, 0]])
    np.testing.assert_array_equal(reverse_padded(x, np.array([3, 2])), [[3, 2, 1, 0], [5, 4, 0, 0]])


def test_reversed_model_equals_plain_model_on_reversed_input(float64):
    plain, rev = tiny(attention="luong"), tiny(attention="luong", reverse=True)
    lengths = (SRC != 0).sum(1)
    expected = plain.forward(reverse_padded(SRC, lengths), TGT_IN)
    rev.set_weights(plain.get_weights())
    np.testing.assert_allclose(rev.forward(SRC, TGT_IN), expected)
    # attention weights come back in the original source order
    np.testing.assert_allclose(rev.attention_weights,
                               reverse_padded(plain.attention_weights.transpose(0, 2, 1), lengths).transpose(0, 2, 1))
    assert (rev.attention_weights[2, :, 1:] == 0).all()


@pytest.mark.parametrize("variant", ["baseline", "peeky_2layers", "luong_general_gru_reverse",
                                     "bahdanau_gru_2layers", "bahdanau_rnn_peeky_reverse"])
def test_step_decoding_matches_teacher_forcing(float64, variant):
    """Feeding the teacher-forced tokens one at a time through decode_step gives the same
    log-probabilities (and attention) as the whole-sequence forward."""
    model = tiny(**VARIANTS[variant])
    logits = model.forward(SRC, TGT_IN)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    model.eval()
    state = model.init_decode(SRC)
    for t in range(TGT_IN.shape[1]):
        step_logp, state, attn = model.decode_step(state, TGT_IN[:, t])
        np.testing.assert_allclose(step_logp, logp[:, t], atol=1e-10)
        if model.attention != "none":
            np.testing.assert_allclose(attn, model.attention_weights[:, t], atol=1e-12)


@pytest.mark.parametrize("variant", ["baseline", "bahdanau", "luong_dot"])
def test_beam_width_one_equals_greedy_on_a_model(float64, variant):
    model = tiny(**VARIANTS[variant]).eval()
    greedy = greedy_decode(model, SRC, None, 6, 2, 3)
    beam = beam_search(model, SRC, None, 1, 6, 2, 3)
    assert greedy.tokens == beam.tokens
    np.testing.assert_allclose(greedy.scores, beam.scores)
    wide = beam_search(model, SRC, None, 4, 6, 2, 3, length_penalty=0.0)
    # the plain-score beam never ends with a worse total than greedy
    assert all(w >= g - 1e-12 for w, g in zip(wide.scores, greedy.scores))


def test_bad_input_names_the_model():
    model = tiny(name="s2s")
    with pytest.raises(ValueError, match="s2s.*source ids"):
        model.forward(np.zeros((2, 3)), TGT_IN[:2])
    with pytest.raises(ValueError, match="s2s.*at least one token"):
        model.forward(np.array([[1, 2], [0, 0]]), TGT_IN[:2])
    with pytest.raises(ValueError, match="attention must be"):
        tiny(attention="soft")
    with pytest.raises(ValueError, match="hidden must be even"):
        Seq2Seq(5, 5, hidden=5, bidirectional=True)


def test_summary_lists_the_parts_with_open_time_axes():
    model = Seq2Seq(V_SRC, V_TGT, emb=3, hidden=4, attention="luong", bidirectional=True, seed=0)
    model.forward(SRC, TGT_IN)
    text = model.summary(print_fn=None)
    names = [row["class_name"] for row in model.summary_rows()]
    assert names == ["Embedding", "Bidirectional", "Embedding", "LSTM", "LuongAttention", "Dense", "Dense"]
    assert f"Total params: {model.count_params():,}" in text
    assert sum(row["params"] for row in model.summary_rows()) == model.count_params()
    assert "(None, None, 4)" in text


@pytest.mark.parametrize("cell,options", [("rnn", {"activation": "relu"}), ("rnn", {"activation": "linear"}),
                                          ("gru", {"reset_after": False}), ("gru", {}), ("lstm", {})])
def test_step_decoder_equals_the_whole_sequence_layer(float64, cell, options):
    """StepRNN stepping a layer's weights gives that layer's outputs and gradients (to 1e-12)."""
    from rnnlab.layers import kinds
    from rnnlab.models.decoders import StepRNN

    rng = np.random.default_rng(4)
    layer = kinds.layer_class(cell)(3, return_sequences=True, return_state=True, seed=0,
                                    bias_initializer="uniform:0.5", **options)
    x = rng.standard_normal((2, 5, 4))
    y, *final = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    layer.backward(dy)
    expected = [g.copy() for g in layer.grads]
    stepper = StepRNN(layer)
    stepper.start()
    states = [np.zeros((2, 3)) for _ in final]
    for t in range(5):
        states = stepper.step(stepper.project(x[:, t]), states)
        np.testing.assert_allclose(states[0], y[:, t], rtol=0, atol=1e-12)
    carry, dxz = [np.zeros((2, 3)) for _ in final], [None] * 5
    for t in reversed(range(5)):
        carry[0] = carry[0] + dy[:, t]
        dxz[t], carry = stepper.step_backward(carry)
    stepper.finish()
    stepper.input_grads(x.transpose(1, 0, 2).reshape(10, 4), np.concatenate(dxz, axis=0))
    for g, ref in zip(layer.grads, expected):
        np.testing.assert_allclose(g, ref, rtol=0, atol=1e-12)


def test_cell_options_round_trip_through_the_config():
    model = Seq2Seq(V_SRC, V_TGT, emb=3, hidden=4, cell="gru", attention="bahdanau",
                    cell_options={"reset_after": False}, seed=0)
    again = Seq2Seq.from_config(model.get_config())
    assert again.get_config() == model.get_config()
    assert all(not rnn.reset_after for rnn in again.encoder.rnns + again.decoder.rnns)


def test_a_checkpoint_from_before_the_dropouts_joined_sublayers_still_loads(float64, tmp_path):
    # Earlier encoders and decoders kept their dropout layers outside ``sublayers``, so their
    # checkpoints' build records skip them; the loader must still build every part as recorded.
    import rnnlab as rl
    from rnnlab.checkpoint import save_checkpoint

    model = tiny(attention="bahdanau", layers=2, bidirectional=True, dropout=0.1)
    parts = (model.encoder, model.decoder)
    kept = [part.sublayers for part in parts]
    for part in parts:
        part.sublayers = [layer for layer in part.sublayers if layer not in part.drops]
    save_checkpoint(tmp_path / "old.npz", model)
    for part, sublayers in zip(parts, kept):
        part.sublayers = sublayers
    loaded = rl.load(tmp_path / "old.npz")
    for saved, got in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(saved, got)
    model.eval(), loaded.eval()
    np.testing.assert_array_equal(loaded.forward(SRC, TGT_IN), model.forward(SRC, TGT_IN))
