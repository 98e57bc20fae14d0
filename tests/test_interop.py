"""Keras <-> PyTorch recurrent weight layouts (pure NumPy; the torch-module helpers are in
tests/parity/test_recurrent_torch.py)."""
import subprocess
import sys

import numpy as np
import pytest

from rnnlab import interop
from rnnlab.layers import GRU, LSTM, Bidirectional, SimpleRNN

D, H = 3, 2


def keras_weights(kind, reset_after=True, seed=0):
    rng = np.random.default_rng(seed)
    G = interop.GATES[kind]
    bias_shape = (2, G * H) if kind == "gru" and reset_after else (G * H,)
    return [rng.standard_normal((D, G * H)), rng.standard_normal((H, G * H)), rng.standard_normal(bias_shape)]


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("layer,reverse,suffix", [(0, False, "_l0"), (1, True, "_l1_reverse"), (None, False, "")])
def test_keras_to_torch_to_keras_is_exact(kind, layer, reverse, suffix):
    weights = keras_weights(kind)
    state = interop.keras_to_torch(kind, weights, layer=layer, reverse=reverse)
    G = interop.GATES[kind]
    assert set(state) == {f"{n}{suffix}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    assert state[f"weight_ih{suffix}"].shape == (G * H, D) and state[f"weight_hh{suffix}"].shape == (G * H, H)
    back = interop.torch_to_keras(kind, state, layer=layer, reverse=reverse)
    for a, b in zip(back, weights):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_torch_to_keras_to_torch(kind):
    rng = np.random.default_rng(1)
    G = interop.GATES[kind]
    state = {"weight_ih_l0": rng.standard_normal((G * H, D)), "weight_hh_l0": rng.standard_normal((G * H, H)),
             "bias_ih_l0": rng.standard_normal(G * H), "bias_hh_l0": rng.standard_normal(G * H)}
    back = interop.keras_to_torch(kind, interop.torch_to_keras(kind, state))
    for name in ("weight_ih_l0", "weight_hh_l0"):
        np.testing.assert_array_equal(back[name], state[name])
    if kind == "gru":  # both biases map one to one
        np.testing.assert_array_equal(back["bias_ih_l0"], state["bias_ih_l0"])
        np.testing.assert_array_equal(back["bias_hh_l0"], state["bias_hh_l0"])
    else:  # one Keras bias: the sum is what the layer computes with
        np.testing.assert_allclose(back["bias_ih_l0"] + back["bias_hh_l0"], state["bias_ih_l0"] + state["bias_hh_l0"])
        np.testing.assert_array_equal(back["bias_hh_l0"], 0.0)


def test_gate_orders():
    # LSTM: Keras i, f, c, o is PyTorch i, f, g, o; GRU: Keras z, r, h -> PyTorch r, z, n
    lstm = keras_weights("lstm")
    np.testing.assert_array_equal(interop.keras_to_torch("LSTM", lstm)["weight_ih_l0"], lstm[0].T)
    kernel, recurrent, bias = keras_weights("gru")
    state = interop.keras_to_torch("GRU", [kernel, recurrent, bias])
    z, r, h = (kernel[:, k * H:(k + 1) * H].T for k in range(3))
    np.testing.assert_array_equal(state["weight_ih_l0"], np.concatenate([r, z, h]))
    np.testing.assert_array_equal(state["bias_hh_l0"][:H], bias[1, H:2 * H])  # b_hr is Keras' recurrent r bias


def test_gradients_flag_maps_the_shared_bias_gradient():
    rng = np.random.default_rng(2)
    grads = {"weight_ih_l0": rng.standard_normal((4 * H, D)), "weight_hh_l0": rng.standard_normal((4 * H, H))}
    grads["bias_ih_l0"] = grads["bias_hh_l0"] = rng.standard_normal(4 * H)  # dL/db_ih == dL/db_hh
    np.testing.assert_array_equal(interop.torch_to_keras("lstm", grads, gradients=True)[2], grads["bias_ih_l0"])
    np.testing.assert_array_equal(interop.torch_to_keras("lstm", grads)[2], 2 * grads["bias_ih_l0"])


def test_no_bias_module_gives_zero_bias():
    rng = np.random.default_rng(3)
    state = {"weight_ih_l0": rng.standard_normal((3 * H, D)), "weight_hh_l0": rng.standard_normal((3 * H, H))}
    np.testing.assert_array_equal(interop.torch_to_keras("gru", state)[2], np.zeros((2, 3 * H)))


def test_refusals_are_clear():
    with pytest.raises(ValueError, match="reset_after=False.*no PyTorch equivalent"):
        interop.keras_to_torch("gru", keras_weights("gru", reset_after=False))
    with pytest.raises(ValueError, match="reset_after=False.*no PyTorch equivalent"):
        layer = GRU(H, reset_after=False)
        layer.build((None, D))
        interop.torch_state_dict([layer])
    with pytest.raises(ValueError, match="unknown recurrent kind"):
        interop.keras_to_torch("transformer", keras_weights("lstm"))
    with pytest.raises(KeyError, match="weight_ih_l1"):
        interop.torch_to_keras("lstm", interop.keras_to_torch("lstm", keras_weights("lstm")), layer=1)
    with pytest.raises(ValueError, match="do not form a gru layer"):
        interop.keras_to_torch("gru", keras_weights("lstm"))
    with pytest.raises(ValueError, match="activation 'sigmoid'"):
        layer = SimpleRNN(H, activation="sigmoid")
        layer.build((None, D))
        interop.torch_state_dict([layer])


def test_stack_state_dict_round_trip_without_torch():
    """A stacked bidirectional stack -> torch names -> a fresh stack: the same weights."""
    def stack(seed):
        first = Bidirectional(LSTM(H, return_sequences=True, seed=seed))
        second = LSTM(H, seed=seed + 7)
        first.build((None, D))
        second.build((None, 2 * H))
        return [first, second]

    source, target = stack(0), stack(100)
    state = interop.torch_state_dict(source)
    assert sorted(state) == sorted(f"{n}_l{k}{s}" for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                                   for k, s in [(0, ""), (0, "_reverse"), (1, "")])
    assert state["weight_ih_l1"].shape == (4 * H, 2 * H)
    interop.copy_from_torch(state, target)
    for a, b in zip([p for l in target for p in l.params], [p for l in source for p in l.params]):
        np.testing.assert_array_equal(a, b)


def test_importing_interop_does_not_import_torch():
    code = ("import sys, rnnlab.interop, rnnlab.layers, rnnlab.cli.export; "
            "assert not {'torch', 'h5py', 'onnx', 'onnxruntime', 'keras'} & set(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True)
