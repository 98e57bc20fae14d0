"""Captioner: float64 gradient checks (parameters and features), steps equal teacher forcing,
greedy and beam search, save/load."""
import numpy as np
import pytest

import rnnlab
from gradcheck import check_layer_gradients
from rnnlab.search import beam_search, greedy_decode
from rnnlab.losses import log_softmax
from rnnlab.models.captioner import Captioner

TGT_IN = np.array([[2, 4, 5, 6], [2, 7, 0, 0], [2, 4, 4, 0]])


def _features(seed=0):
    return np.random.default_rng(seed).standard_normal((3, 5))


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("feed", [False, True])
def test_gradients_of_parameters_and_features(float64, cell, feed):
    model = Captioner(5, 8, emb=3, hidden=4, layers=2, cell=cell, feed_features=feed, feed_size=2, seed=1)
    errors = check_layer_gradients(model, _features(), {"tgt_in": TGT_IN})
    assert "input" in errors


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
    model = Captioner(5, 8, emb=3, hidden=4, cell="gru", feed_features=True, feed_size=2, seed=4)
    loaded = rnnlab.models.load(model.save(tmp_path / "cap.npz"))
    assert isinstance(loaded, Captioner) and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.forward(_features(), TGT_IN), model.forward(_features(), TGT_IN))
    with pytest.raises(ValueError, match=r"expected features of shape \(batch, 5\)"):
        model.forward(np.zeros((3, 4)), TGT_IN)
