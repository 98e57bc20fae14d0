"""rnnlab.streaming.StreamingLM: the batch-1 step equals LanguageModel.forward on (1, 1) windows
with the state carried (float64), on the compiled and the NumPy path."""
import numpy as np
import pytest

from rnnlab import streaming
from rnnlab.models.lm import LanguageModel


@pytest.fixture(params=["numpy", "compiled"])
def path(request, monkeypatch):
    if request.param == "compiled" and streaming.numba is None:
        pytest.skip("numba is not installed")
    monkeypatch.setattr(streaming, "USE_NUMBA", request.param == "compiled")
    return request.param


@pytest.mark.parametrize("cell, layers, tie", [("lstm", 2, False), ("gru", 2, False), ("lstm", 1, True),
                                               ("gru", 3, True)])
def test_each_step_equals_the_layers_with_the_state_carried(float64, path, cell, layers, tie):
    emb = 7 if tie else 5
    model = LanguageModel(13, emb=emb, hidden=7, layers=layers, cell=cell, tie_weights=tie, seed=4)
    model.eval()
    stream = streaming.StreamingLM(model)
    tokens = np.random.default_rng(0).integers(0, 13, 25)
    for round_ in range(2):   # the second round after reset() starts from zeros again
        model.reset_states()
        stream.reset()
        for t in tokens:
            expected = model.forward(np.array([[t]]))[0, -1]
            got = stream.step(int(t))
            assert got.dtype == np.float64
            np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_float32_agrees_to_rounding(path):
    model = LanguageModel(11, emb=6, hidden=9, layers=2, cell="lstm", seed=1)
    model.eval()
    stream = streaming.StreamingLM(model)
    for t in (3, 1, 4, 1, 5):
        expected = model.forward(np.array([[t]]))[0, -1]
        got = stream.step(t)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_refuses_what_it_does_not_stream():
    with pytest.raises(ValueError, match="LSTM and GRU layers only"):
        streaming.StreamingLM(LanguageModel(5, emb=3, hidden=4, layers=1, cell="rnn", seed=0))
