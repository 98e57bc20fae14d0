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
