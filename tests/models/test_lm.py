"""LanguageModel: whole-model gradient check in float64 (carried state, dropout, tying), init,
carried state, generation."""
import numpy as np
import pytest

import rnnlab
from gradcheck import numerical_grad, rel_error
from rnnlab.losses import SoftmaxCrossEntropy
from rnnlab.models.lm import LanguageModel, sample_next

V = 11


def _ids(shape, seed=0):
    return np.random.default_rng(seed).integers(0, V, size=shape)


def check_lm_gradients(model, x, y, carried=None):
    """Analytic vs numerical gradient of the mean cross-entropy w.r.t. every parameter, with
    the carried state and the dropout masks held fixed across all evaluations."""
    loss_fn = SoftmaxCrossEntropy()
    rng_state = model.rng_state()

    def loss():
        model.set_states(carried)
        model.set_rng_state(rng_state)  # the same dropout masks every time
        return loss_fn.forward(model.forward(x), y)

    loss()
    model.backward(loss_fn.backward())
    analytic = [g.copy() for g in model.grads]
    errors = [rel_error(a, numerical_grad(loss, p)) for a, p in zip(analytic, model.params)]
    assert max(errors) < 1e-6, errors
    return errors


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_gradients_of_the_whole_model_with_carried_state_and_dropout(float64, cell):
    model = LanguageModel(V, emb=4, hidden=5, layers=2, cell=cell, dropout=0.3, init_scale=0.5, seed=1)
    model.forward(_ids((2, 3), seed=1))  # a first window: its final state is carried into the next
    carried = model.states
    assert carried is not None and carried[0][0].shape == (2, 5)
    errors = check_lm_gradients(model, _ids((2, 4), seed=2), _ids((2, 4), seed=3), carried)
    assert len(errors) == len(model.params) == 1 + 2 * 3 + 2


def test_gradients_with_tied_weights_include_both_uses_of_the_embedding(float64):
    model = LanguageModel(V, emb=6, hidden=6, layers=1, tie_weights=True, variational=True, dropout=0.2,
                          init_scale=0.5, seed=2)
    x, y = _ids((3, 4), seed=4), _ids((3, 4), seed=5)
    check_lm_gradients(model, x, y)
    # the output layer reuses the embedding: no separate (hidden, vocab) kernel
    assert model.count_params() == V * 6 + V + model.rnns[0].count_params()
    emb = model.embedding.embeddings
    assert not any(p is not emb and p.shape == (6, V) for p in model.params)


def test_tie_weights_needs_emb_equal_to_hidden():
    with pytest.raises(ValueError, match=r"tie_weights.*emb=8, hidden=16"):
        LanguageModel(V, emb=8, hidden=16, tie_weights=True)


def test_uniform_init_scale_bounds_every_weight():
    model = LanguageModel(50, emb=8, hidden=8, layers=2, init_scale=0.05, seed=0)
    for p in model.params:
        assert np.abs(p).max() <= 0.05 and np.abs(p).max() > 0.02
        assert p.dtype == np.float32
    # parts of equal shape start different
    assert not np.array_equal(model.rnns[1].params[1], model.rnns[0].params[1])


def test_state_is_carried_between_calls_until_reset(float64):
    model = LanguageModel(V, emb=4, hidden=5, layers=2, seed=3).eval()
    ids = _ids((2, 7), seed=6)
    whole = model.forward(ids)
    model.reset_states()
    model.forward(ids[:, :3])
    np.testing.assert_allclose(model.forward(ids[:, 3:]), whole[:, 3:], rtol=1e-12)  # continues the text
    model.reset_states()
    assert not np.allclose(model.forward(ids[:, 3:]), whole[:, 3:])


def test_carried_state_of_another_batch_size_is_an_error():
    model = LanguageModel(V, emb=4, hidden=5, layers=1, seed=0)
    model.forward(_ids((2, 3)))
    with pytest.raises(ValueError, match=r"batch size 2.*\(3, 3\).*reset_states"):
        model.forward(_ids((3, 3)))


def test_generate_is_deterministic_under_a_seed_and_greedy_at_temperature_zero():
    model = LanguageModel(V, emb=8, hidden=8, layers=1, init_scale=1.0, seed=4)
    a = model.generate([1, 2], 30, temperature=1.0, seed=7)
    assert a == model.generate([1, 2], 30, temperature=1.0, seed=7)
    assert a != model.generate([1, 2], 30, temperature=1.0, seed=8)
    assert len(a) == 30 and all(0 <= t < V for t in a)
    greedy = model.generate([1, 2], 10, temperature=0.0)
    assert greedy == model.generate([1, 2], 10, top_k=1, seed=123)
    # greedy by hand: feed the argmax back in
    model.eval()
    model.reset_states()
    logits = model.forward(np.array([[1, 2]]))[0, -1]
    by_hand = []
    for _ in range(10):
        by_hand.append(int(np.argmax(logits)))
        logits = model.forward(np.array([[by_hand[-1]]]))[0, -1]
    assert greedy == by_hand
    assert model.states is not None
    model.generate([1], 1)
    assert model.states is None  # generation leaves the state reset


def test_sample_next_top_k_restricts_to_the_k_most_likely():
    logits = np.array([0.0, 5.0, 4.0, -1.0, 3.0])
    rng = np.random.default_rng(0)
    draws = {sample_next(logits, temperature=2.0, top_k=2, rng=rng) for _ in range(200)}
    assert draws == {1, 2}
    with pytest.raises(ValueError, match="top_k"):
        sample_next(logits, top_k=0)


def test_save_and_load_rebuild_the_same_model(tmp_path):
    model = LanguageModel(V, emb=6, hidden=6, layers=2, cell="gru", tie_weights=True, dropout=0.5, seed=5).eval()
    ids = _ids((2, 5))
    path = model.save(tmp_path / "lm.npz")
    loaded = rnnlab.models.load(path).eval()
    assert isinstance(loaded, LanguageModel) and loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.forward(ids), model.forward(ids))


@pytest.mark.slow   # seconds: a real training or a process under a memory cap
def test_a_long_prime_goes_through_in_windows_with_the_state_carried(monkeypatch, float64):
    """`rnnlab sample --prime` of any length: one forward over the whole prime took memory in
    proportion to it (issue 29, item 7); windows give the same text in the memory of one."""
    import tracemalloc

    from rnnlab.models import lm

    model = LanguageModel(V, emb=8, hidden=8, layers=2, init_scale=1.0, seed=4)
    prime = _ids(700, seed=3).tolist()
    windowed = model.generate(prime, 20, temperature=0.0)
    monkeypatch.setattr(lm, "PRIME_WINDOW", len(prime))               # all at once, as before
    assert model.generate(prime, 20, temperature=0.0) == windowed
    monkeypatch.undo()
    long_prime = _ids(80_000, seed=5).tolist()
    tracemalloc.start()
    model.generate(long_prime, 1)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 16 * 2**20           # at once: 80,000 steps of about 150 float64 numbers, about 100 MB
