"""Captioner: float64 gradient checks (parameters and features), steps equal teacher forcing,
greedy and beam search, save/load."""
import numpy as np
import pytest

import rnnlab
from gradcheck import check_layer_gradients
from rnnlab.search import beam_search, greedy_decode
from rnnlab.losses import log_softmax
from rnnlab.models.captioner import Captioner
from rnnlab.models.stack import part_seeds

TGT_IN = np.array([[2, 4, 5, 6], [2, 7, 0, 0], [2, 4, 4, 0]])


def _features(seed=0):
    return np.random.default_rng(seed).standard_normal((3, 5))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("feed", [False, True])
def test_gradients_of_parameters_and_features(float64, cell, feed):
    model = Captioner(5, 8, emb=3, hidden=4, layers=2, cell=cell, feed_features=feed, feed_size=2, seed=1)
    errors = check_layer_gradients(model, _features(), {"tgt_in": TGT_IN})
    assert "input" in errors


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_gradients_with_dropout_on_features_and_outputs(float64, cell):
    model = Captioner(5, 8, emb=3, hidden=4, layers=2, cell=cell, feed_features=True, feed_size=2, dropout=0.4,
                      seed=1)
    forward = model.forward

    def same_masks(*args, **kwargs):            # every call draws the masks of the first
        for drop in model.drops:
            drop._gen = None
        return forward(*args, **kwargs)

    model.forward = same_masks
    errors = check_layer_gradients(model, _features(), {"tgt_in": TGT_IN})
    assert "input" in errors
    for drop in model.drops:                    # dropout was really on: some entries dropped, some kept
        assert (drop.mask == 0).any() and (drop.mask > 0).any()
    # eval mode (what decoding uses) drops nothing: two calls agree
    model.eval()
    np.testing.assert_array_equal(forward(_features(), TGT_IN), forward(_features(), TGT_IN))


@pytest.mark.parametrize("feed", [False, True])
def test_gradients_through_the_feature_encoder(float64, feed):
    model = Captioner(5, 8, emb=3, hidden=4, layers=2, feed_features=feed, feed_size=2, encoder=6, seed=1)
    assert model.encoder.kernel.shape == (5, 6) and model.init_proj.kernel.shape == (6, 8)
    errors = check_layer_gradients(model, _features(), {"tgt_in": TGT_IN})
    assert "input" in errors
    code = model._encode(_features())           # the encoder really is nonlinear: some units are cut at 0
    assert (code == 0).any() and (code > 0).any()


def test_adding_the_encoder_kept_the_weights_of_earlier_models():
    assert part_seeds(7, 8)[:7] == part_seeds(7, 7)
    plain = Captioner(5, 8, emb=3, hidden=4, feed_features=True, feed_size=2, dropout=0.3, seed=7)
    encoded = Captioner(5, 8, emb=3, hidden=4, feed_features=True, feed_size=2, dropout=0.3, encoder=6, seed=7)
    assert len(encoded.params) == len(plain.params) + 2
    # the embedding, decoder and head are drawn as before (the projections read 6 codes, not 5 features)
    for a, b in zip(plain.params[4:], encoded.params[6:], strict=True):
        np.testing.assert_array_equal(a, b)


def test_adding_dropout_kept_the_weights_of_earlier_models():
    # the parts' seeds are a prefix-stable draw: 7 seeds start with the 5 drawn before dropout
    assert part_seeds(7, 7)[:5] == part_seeds(7, 5)
    plain = Captioner(5, 8, emb=3, hidden=4, feed_features=True, feed_size=2, seed=7)
    dropped = Captioner(5, 8, emb=3, hidden=4, feed_features=True, feed_size=2, dropout=0.3, seed=7)
    for a, b in zip(plain.params, dropped.params):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("feed", [False, True])
def test_decode_steps_give_the_teacher_forced_log_probabilities(float64, feed):
    model = Captioner(5, 8, emb=3, hidden=4, layers=2, feed_features=feed, feed_size=2, seed=2)
    features = _features(1)
    forced = log_softmax(model.forward(features, TGT_IN))
    state = model.init_decode(features)
    for t in range(TGT_IN.shape[1]):
        logp, state, attention = model.decode_step(state, TGT_IN[:, t])
        assert attention is None
        np.testing.assert_allclose(logp, forced[:, t], rtol=0, atol=1e-12)


def test_greedy_and_beam_search(float64):
    model = Captioner(5, 9, emb=4, hidden=6, feed_features=True, feed_size=3, seed=3)
    features = _features(2)
    greedy = model.caption(features, max_len=6)
    assert greedy.tokens == greedy_decode(model, features, None, 6, 2, 3).tokens
    beam1 = model.caption(features, max_len=6, beam_width=1)
    assert beam1.tokens == greedy.tokens
    beam = model.caption(features, max_len=6, beam_width=4, length_penalty=0.0)
    assert beam.tokens == beam_search(model, features, None, 4, 6, 2, 3, 0.0).tokens
    for g, b, tokens in zip(greedy.scores, beam.scores, greedy.tokens):
        if len(tokens) < 6:                      # greedy finished: beam's total log p is at least as good
            assert b >= g - 1e-12
    assert model.training


def test_save_load_and_bad_features(tmp_path):
    model = Captioner(5, 8, emb=3, hidden=4, cell="gru", feed_features=True, feed_size=2, dropout=0.2,
                      encoder=3, seed=4).eval()
    loaded = rnnlab.models.load(model.save(tmp_path / "cap.npz")).eval()
    assert isinstance(loaded, Captioner) and loaded.get_config() == model.get_config()
    assert loaded.dropout == 0.2 and loaded.encoder_units == 3
    np.testing.assert_array_equal(loaded.forward(_features(), TGT_IN), model.forward(_features(), TGT_IN))
    with pytest.raises(ValueError, match=r"expected features of shape \(batch, 5\)"):
        model.forward(np.zeros((3, 4)), TGT_IN)
