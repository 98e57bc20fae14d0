"""SequencePooling and RecurrentStack: values, float64 gradient checks, state in and out."""
import numpy as np
import pytest

from gradcheck import check_layer_gradients, numerical_grad, rel_error
from rnnlab.models.stack import RecurrentStack, SequencePooling

MASK = np.array([[1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=bool)


def _y(seed=0):
    return np.random.default_rng(seed).standard_normal((3, 4, 6))


def test_pooling_values_use_only_real_steps(float64):
    y = _y()
    y_padded = y.copy()
    y_padded[~MASK] = 1e3        # padding must not leak into any pooling
    last = SequencePooling("last").forward(y_padded, MASK)
    np.testing.assert_array_equal(last, y[[0, 1, 2], [2, 3, 0]])
    mean = SequencePooling("mean").forward(y_padded, MASK)
    np.testing.assert_allclose(mean[0], y[0, :3].mean(axis=0))
    mx = SequencePooling("max").forward(y_padded, MASK)
    np.testing.assert_array_equal(mx[0], y[0, :3].max(axis=0))
    np.testing.assert_array_equal(mx[2], y[2, 0])
    bi = SequencePooling("last", bidirectional=True).forward(y_padded, MASK)
    np.testing.assert_array_equal(bi[0], np.concatenate([y[0, 2, :3], y[0, 0, 3:]]))


@pytest.mark.parametrize("mode, bidirectional", [("last", False), ("last", True), ("mean", False), ("max", False)])
def test_pooling_gradients(float64, mode, bidirectional):
    errors = check_layer_gradients(SequencePooling(mode, bidirectional), _y(1), {"mask": MASK})
    assert errors["input"] < 1e-8


def test_pooling_refuses_rows_without_real_steps_and_unknown_modes():
    with pytest.raises(ValueError, match="row 1 of the batch has no real step"):
        SequencePooling("mean").forward(_y(), np.array([[1, 0, 0, 0], [0, 0, 0, 0], [1, 1, 1, 1]], bool))
    with pytest.raises(ValueError, match="pooling must be one of last, mean, max"):
        SequencePooling("median")


@pytest.mark.parametrize("cell, bidirectional", [("lstm", False), ("gru", True), ("rnn", False)])
def test_stack_gradients_with_mask(float64, cell, bidirectional):
    stack = RecurrentStack(3, layers=2, cell=cell, bidirectional=bidirectional, seed=0)
    check_layer_gradients(stack, np.random.default_rng(2).standard_normal((3, 4, 2)), {"mask": MASK})


def test_stack_initial_state_gradient_and_step_by_step_equals_whole(float64):
    stack = RecurrentStack(3, layers=2, cell="lstm", seed=4)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 2))
    init = [[rng.standard_normal((2, 3)) for _ in range(2)] for _ in range(2)]
    R = rng.standard_normal((2, 5, 3))

    def loss():
        return float((stack.forward(x, initial_state=init) * R).sum())

    loss()
    stack.backward(R)
    for layer in range(2):
        for k in range(2):
            assert rel_error(stack.dinitial_state[layer][k], numerical_grad(loss, init[layer][k])) < 1e-7
    whole = stack.forward(x, initial_state=init)
    state, steps = init, []
    for t in range(5):
        steps.append(stack.forward(x[:, t:t + 1], initial_state=state)[:, 0])
        state = stack.final_states
    np.testing.assert_allclose(np.stack(steps, axis=1), whole, rtol=0, atol=1e-13)


# ---- the one builder, the one seeding scheme, the one walk ---------------------------------------


def test_recurrent_layers_builds_seeded_layers_each_on_the_one_below(float64):
    from rnnlab.layers import Bidirectional, GRU
    from rnnlab.models.stack import part_seeds, recurrent_layers

    seeds = part_seeds(3, 2)
    layers = recurrent_layers("gru", 4, seeds, input_dim=5, bidirectional=True, name="enc", reset_after=False)
    assert [type(layer) for layer in layers] == [Bidirectional, Bidirectional]
    assert [layer.name for layer in layers] == ["enc_bidirectional_0", "enc_bidirectional_1"]
    assert [layer.input_shape for layer in layers] == [(None, 5), (None, 8)]   # the layer below reads both ways
    alone = GRU(4, return_sequences=True, return_state=True, seed=seeds[1], reset_after=False)
    alone.build((None, 8))
    # the forward direction of layer 1 is the layer its seed alone gives
    for built, expected in zip(layers[1].params[:3], alone.params):
        np.testing.assert_array_equal(built, expected)
    x = np.random.default_rng(0).standard_normal((2, 3, 5))
    y, *states = layers[0].forward(x)
    assert y.shape == (2, 3, 8) and len(states) == 2      # the sequence and each direction's state


def fingerprint(model) -> float:
    """One number from every weight, in order (position-weighted sums and absolute sums)."""
    return sum((k + 1) * float(np.abs(p).sum() + 3 * p.sum()) for k, p in enumerate(model.params))


def _task_models():
    from rnnlab.models import Captioner, LanguageModel, Seq2Seq, SequenceClassifier, Tagger

    def seq2seq(attention, cell):
        model = Seq2Seq(20, 22, emb=6, hidden=6, cell=cell, layers=2, attention=attention, bidirectional=True,
                        dropout=0.1, seed=8)
        model.forward(np.array([[4, 5, 6, 0], [7, 8, 9, 10]]), np.array([[2, 4, 5], [2, 6, 7]]))  # builds it
        return model

    return {
        "lm": LanguageModel(50, emb=8, hidden=8, layers=2, cell="lstm", dropout=0.2, seed=3),
        "lm_tied": LanguageModel(50, emb=8, hidden=8, layers=2, cell="gru", tie_weights=True, init_scale=None,
                                 seed=4),
        "classifier": SequenceClassifier(3, vocab_size=30, emb=6, hidden=5, layers=2, cell="gru", bidirectional=True,
                                         dropout=0.1, input_dropout=0.1, seed=5),
        "tagger": Tagger(30, 20, 5, emb=6, char_emb=4, char_hidden=3, hidden=5, layers=2, cell="rnn", dropout=0.1,
                         seed=6),
        "captioner": Captioner(7, 20, emb=6, hidden=5, layers=2, cell="lstm", feed_features=True, feed_size=3,
                               dropout=0.1, encoder=4, seed=7),
        "seq2seq_none": seq2seq("none", "rnn"),
        "seq2seq_luong": seq2seq("luong", "gru"),
        "seq2seq_bahdanau": seq2seq("bahdanau", "lstm"),
    }


# Each model's initial weights under its seed: the README's figures are reproduced by exact
# commands, so a model's weights for a seed may not drift. The language model, classifier,
# tagger and captioner start as they did before the one builder; seq2seq's parts took seed + k
# (k = 0, 1 + layer, 50, 60, 61, 100 + k; the decoder's seed + 1000) before they joined the one
# scheme, part_seeds, and start from other weights since.
INITIAL_WEIGHTS = {
    "lm": 418.4526896034931,
    "lm_tied": 657.4091243066914,
    "classifier": 1790.867550108345,
    "tagger": 1815.6914252340564,
    "captioner": 1790.8778732610244,
    "seq2seq_none": 2182.901179116804,
    "seq2seq_luong": 3140.393224706493,
    "seq2seq_bahdanau": 7403.450904210354,
}


def test_every_task_model_starts_from_the_weights_its_seed_gave_before(float64):
    got = {name: fingerprint(model) for name, model in _task_models().items()}
    assert got == pytest.approx(INITIAL_WEIGHTS, rel=1e-10)


def test_every_part_of_a_task_model_is_in_the_walk_so_eval_reaches_every_dropout(float64):
    from rnnlab.checkpoint import walk_layers
    from rnnlab.layers.base import Layer
    from rnnlab.layers.core import Dropout

    def held(layer):
        """Layers held in attributes (alone or in lists), recursively: the parts a model has."""
        for value in vars(layer).values():
            for part in value if isinstance(value, (list, tuple)) else [value]:
                if isinstance(part, Layer):
                    yield part
                    yield from held(part)

    for name, model in _task_models().items():
        walked = {id(layer) for layer in walk_layers(model)}
        outside = [part.describe() for part in held(model) if id(part) not in walked]
        assert not outside, f"{name}: parts outside sublayers: {outside}"
        model.eval()
        assert not any(layer.training for layer in walk_layers(model) if isinstance(layer, Dropout)), name
