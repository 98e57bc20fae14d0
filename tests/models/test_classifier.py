"""SequenceClassifier: float64 gradient checks of every parameter, masking, save/load, errors."""
import numpy as np
import pytest

import rnnlab
from gradcheck import check_layer_gradients
from rnnlab.models.classifier import SequenceClassifier

IDS = np.array([[3, 4, 5, 0, 0], [6, 2, 1, 7, 0], [1, 2, 3, 4, 5]])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_gradients_word_ids(float64, cell, pooling, bidirectional):
    model = SequenceClassifier(3, vocab_size=8, emb=3, hidden=3, layers=2, cell=cell, bidirectional=bidirectional,
                               pooling=pooling, seed=1)
    check_layer_gradients(model, IDS)


@pytest.mark.parametrize("pooling", ["last", "max"])
def test_gradients_vectors_with_mask_and_input(float64, pooling):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 2))
    mask = IDS != 0
    model = SequenceClassifier(4, input_dim=2, hidden=3, bidirectional=True, pooling=pooling, seed=2)
    errors = check_layer_gradients(model, x, {"mask": mask})
    assert "input" in errors


@pytest.mark.parametrize("words", [True, False])
def test_gradients_with_input_dropout(float64, words):
    if words:
        model = SequenceClassifier(3, vocab_size=8, emb=3, hidden=3, bidirectional=True, pooling="mean",
                                   dropout=0.3, input_dropout=0.4, seed=4)
        x, extra = IDS, {}
    else:
        model = SequenceClassifier(3, input_dim=2, hidden=3, pooling="max", input_dropout=0.4, seed=4)
        x, extra = np.random.default_rng(1).standard_normal((3, 5, 2)), {"mask": IDS != 0}
    forward = model.forward
    drops = [d for d in (model.input_drop, model.drop) if d is not None]

    def same_masks(*args, **kwargs):            # every call draws the masks of the first
        for drop in drops:
            drop._gen = None
        return forward(*args, **kwargs)

    model.forward = same_masks
    errors = check_layer_gradients(model, x, extra)
    assert ("input" in errors) != words
    mask = model.input_drop.mask                # dropout was really on the inputs
    assert (mask == 0).any() and (mask > 0).any()
    model.eval()                                # and is off in eval mode
    np.testing.assert_array_equal(forward(x, **extra), forward(x, **extra))


def test_input_dropout_kept_the_weights_of_earlier_models():
    plain = SequenceClassifier(3, vocab_size=8, emb=3, hidden=3, dropout=0.3, seed=5)
    dropped = SequenceClassifier(3, vocab_size=8, emb=3, hidden=3, dropout=0.3, input_dropout=0.2, seed=5)
    for a, b in zip(plain.params, dropped.params, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_padding_does_not_change_the_logits(float64, pooling):
    model = SequenceClassifier(2, vocab_size=8, emb=3, hidden=4, bidirectional=True, pooling=pooling, seed=3)
    alone = model.forward(np.array([[3, 4, 5]]))
    padded = model.forward(np.array([[3, 4, 5, 0, 0, 0], [1, 2, 3, 4, 5, 6]]))[:1]
    np.testing.assert_allclose(padded, alone, rtol=0, atol=1e-13)


def test_predict_proba_and_save_load(tmp_path):
    model = SequenceClassifier(3, vocab_size=8, emb=4, hidden=5, layers=2, cell="gru", pooling="mean",
                               dropout=0.2, seed=4)
    probs = model.predict_proba(IDS)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    assert model.training                               # the mode is restored
    loaded = rnnlab.models.load(model.save(tmp_path / "clf.npz"))
    assert isinstance(loaded, SequenceClassifier) and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.predict_proba(IDS), probs)
    assert [row["class_name"] for row in model.summary_rows()] == ["Embedding", "RecurrentStack", "SequencePooling",
                                                                   "Dropout", "Dense"]


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError, match="exactly one"):
        SequenceClassifier(2, vocab_size=5, input_dim=3)
    with pytest.raises(ValueError, match="unknown recurrent cell 'lstmm'"):
        SequenceClassifier(2, vocab_size=5, cell="lstmm")
    model = SequenceClassifier(2, input_dim=3)
    with pytest.raises(ValueError, match=r"expected vectors of shape \(batch, time, 3\)"):
        model.forward(np.zeros((2, 4, 5)))
