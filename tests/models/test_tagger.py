"""Tagger: float64 gradient checks, padding, save/load, streaming equals the whole sentence."""
import numpy as np
import pytest

import rnnlab
from gradcheck import check_layer_gradients
from rnnlab.models.tagger import Tagger

WORDS = np.array([[3, 4, 5, 0], [6, 2, 1, 7]])


def _chars(seed=0):
    chars = np.random.default_rng(seed).integers(1, 6, size=(2, 4, 5))
    chars[:, :, 3:] = 0
    chars[0, 1, 1:] = 0       # a one-letter word
    chars[0, 3] = 0           # padding position
    return chars


@pytest.mark.parametrize("cell, bidirectional", [pytest.param("lstm", True, marks=pytest.mark.slow), ("gru", False),
                                                   ("rnn", True)])
def test_gradients_of_every_parameter(float64, cell, bidirectional):
    model = Tagger(8, 6, 4, emb=3, char_emb=2, char_hidden=2, hidden=3, layers=2, cell=cell,
                   bidirectional=bidirectional, seed=1)
    check_layer_gradients(model, WORDS, {"chars": _chars()})


def test_padding_does_not_change_the_tags_of_real_words(float64):
    model = Tagger(8, 6, 4, emb=3, char_emb=2, char_hidden=2, hidden=3, seed=2)
    chars = _chars()
    alone = model.forward(WORDS[:1, :3], chars[:1, :3])
    padded = model.forward(WORDS, chars)[:1, :3]
    np.testing.assert_allclose(padded, alone, rtol=0, atol=1e-13)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_streaming_one_word_at_a_time_gives_exactly_the_whole_sentence_tags(float64, cell):
    model = Tagger(8, 6, 5, emb=4, char_emb=3, char_hidden=3, hidden=4, layers=2, cell=cell,
                   bidirectional=False, dropout=0.3, seed=3)
    words, chars = WORDS[1:], _chars()[1:]                       # one sentence of 4 words
    whole_logits = model.eval().forward(words, chars)[0]
    state = model.begin_stream()
    streamed = []
    for t in range(words.shape[1]):
        logits, state = model.step(words[:, t], chars[:, t], state)
        streamed.append(logits[0])
    np.testing.assert_allclose(np.stack(streamed), whole_logits, rtol=0, atol=1e-12)
    assert np.stack(streamed).argmax(-1).tolist() == whole_logits.argmax(-1).tolist()
    assert model.predict(words, chars)[0].tolist() == whole_logits.argmax(-1).tolist()


def test_streaming_needs_a_unidirectional_tagger():
    model = Tagger(8, 6, 4, bidirectional=True)
    with pytest.raises(ValueError, match="streaming needs bidirectional=False"):
        model.step(np.array([3]), np.array([[1, 2]]))


def test_save_load(tmp_path):
    model = Tagger(8, 6, 4, emb=3, char_emb=2, char_hidden=2, hidden=3, cell="gru", dropout=0.1, seed=4)
    loaded = rnnlab.models.load(model.save(tmp_path / "tagger.npz"))
    assert isinstance(loaded, Tagger) and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict(WORDS, _chars()), model.predict(WORDS, _chars()))
