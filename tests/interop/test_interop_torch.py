"""Whole models to PyTorch and back: LanguageModel and Sequential, float64, outputs to 1e-9."""
import numpy as np
import pytest
from gradcheck import require_torch

import rnnlab
from rnnlab import interop
from rnnlab import layers as L
from rnnlab.interop import UnsupportedError
from rnnlab.models.lm import LanguageModel

TOL = 1e-9


def _ids(rng, shape, vocab):
    return rng.integers(0, vocab, size=shape)


@pytest.mark.parametrize("cell,layers,tie", [("lstm", 2, False), ("gru", 3, True), ("rnn", 1, False)])
def test_language_model_round_trip(float64, cell, layers, tie):
    torch = require_torch()
    rng = np.random.default_rng(0)
    model = LanguageModel(13, emb=6, hidden=6, layers=layers, cell=cell, dropout=0.3, tie_weights=tie,
                          init_scale=0.5, seed=1).eval()
    ids = _ids(rng, (3, 7), 13)
    model.reset_states()
    ours = model.forward(ids)
    ours_states = model.states
    module = interop.to_torch(model).eval()
    with torch.no_grad():
        logits, state = module(torch.from_numpy(ids))
    np.testing.assert_allclose(logits.numpy(), ours, rtol=0, atol=TOL)
    h = state[0] if cell == "lstm" else state
    for k in range(layers):  # the final states are rnnlab's carried state
        np.testing.assert_allclose(h[k].numpy(), ours_states[k][0], rtol=0, atol=TOL)
        if cell == "lstm":
            np.testing.assert_allclose(state[1][k].numpy(), ours_states[k][1], rtol=0, atol=TOL)
    # change the torch weights (as training there would), convert back: rnnlab follows
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.01 * torch.randn_like(p))
        logits, _ = module(torch.from_numpy(ids))
    back = interop.from_torch(module).eval()
    back.reset_states()
    np.testing.assert_allclose(back.forward(ids), logits.numpy(), rtol=0, atol=TOL)
    # and from a saved state_dict with the recorded config
    again = interop.from_torch(module.state_dict(), config=module.rnnlab_config).eval()
    np.testing.assert_allclose(again.forward(ids), logits.numpy(), rtol=0, atol=TOL)


def _sequentials():
    return {
        "ids_bidirectional": (rnnlab.Sequential([L.Input((7,)), L.Embedding(11, 5),
                                                 L.Bidirectional(L.LSTM(4, return_sequences=True)),
                                                 L.Dropout(0.2), L.Bidirectional(L.GRU(3), merge_mode="ave"),
                                                 L.Dense(2, activation="softmax")]), "ids"),
        "stack": (rnnlab.Sequential([L.Input((7, 3)), L.SimpleRNN(4, activation="relu", return_sequences=True),
                                     L.GRU(5, return_sequences=True, go_backwards=True),
                                     L.LSTM(3, return_sequences=True), L.Flatten(), L.Dense(1, activation="sigmoid")]),
                  "float"),
        "many_to_one_backwards": (rnnlab.Sequential([L.Input((6, 2)), L.LSTM(3, go_backwards=True),
                                                     L.Dense(2, activation="tanh", use_bias=False)]), "float"),
        "bi_sequences_mul_sum": (rnnlab.Sequential([L.Input((5, 2)),
                                                    L.Bidirectional(L.SimpleRNN(3, return_sequences=True),
                                                                    merge_mode="mul"),
                                                    L.Bidirectional(L.LSTM(2, return_sequences=True),
                                                                    merge_mode="sum"), L.Dense(2)]), "float"),
    }


@pytest.mark.parametrize("name", sorted(_sequentials()))
def test_sequential_round_trip(float64, name):
    torch = require_torch()
    rng = np.random.default_rng(2)
    model, kind = _sequentials()[name]
    for p in model.params:  # biases too: a swapped gate block must show
        p[...] = rng.uniform(-0.7, 0.7, p.shape)
    model.eval()
    x = _ids(rng, (4, 7), 11) if kind == "ids" else rng.standard_normal((4, *model.input_shape))
    ours = model.forward(x)
    module = interop.to_torch(model).eval()
    with torch.no_grad():
        theirs = module(torch.from_numpy(x))
    np.testing.assert_allclose(theirs.numpy(), ours, rtol=0, atol=TOL)
    with torch.no_grad():
        for p in module.parameters():
            p.mul_(1.1)
        theirs = module(torch.from_numpy(x))
    back = interop.from_torch(module).eval()
    np.testing.assert_allclose(back.forward(x), theirs.numpy(), rtol=0, atol=TOL)


def test_refusals_name_the_layer(float64):
    require_torch()
    cases = [
        (rnnlab.Sequential([L.Input((5, 2)), L.GRU(3, reset_after=False, name="old_gru")]), "old_gru.*reset_after"),
        (rnnlab.Sequential([L.Input((5,)), L.Embedding(4, 2, mask_zero=True, name="emb")]), "emb.*mask_zero"),
        (rnnlab.Sequential([L.Input((5, 2)), L.SimpleRNN(3, activation="sigmoid", name="sig")]), "sig.*sigmoid"),
        (rnnlab.Sequential([L.Input((5, 2)), L.Activation("tanh", name="act")]), "act.*Activation"),
        (LanguageModel(5, 4, 4, layers=1, dropout=0.2, variational=True), "variational"),
    ]
    for model, pattern in cases:
        with pytest.raises(UnsupportedError, match=pattern):
            interop.to_torch(model)
    with pytest.raises(ValueError, match="not made by rnnlab"):
        interop.from_torch({"weight": np.zeros(2)})
