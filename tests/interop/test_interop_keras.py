"""Keras 3 model files into rnnlab, checked against Keras itself.

Keras runs on its torch backend here (``KERAS_BACKEND=torch``): torch is already a test
dependency, and Keras 3.15's NumPy backend imports jax (and scipy), which the test extra does
not carry. Both sides run in float64; the recurrent layers then agree to 1e-16, but Keras's
torch backend rounds its Dense and SimpleRNN products through float32 (about 8e-8 off a NumPy
float64 reference, which rnnlab matches exactly), hence the float32-level tolerance.
"""
import json
import os
import zipfile

import numpy as np
import pytest

import rnnlab
from rnnlab import interop
from rnnlab.interop import UnsupportedError

TOL = 1e-6


def require_keras():
    """Keras and h5py: a missing one skips the test outside CI and fails it in CI."""
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import h5py  # noqa: F401
        import keras
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("Keras interop tests need `pip install keras h5py` (and torch, Keras' backend here)")
    keras.config.set_floatx("float64")
    return keras


@pytest.fixture
def keras(float64):
    k = require_keras()
    yield k
    k.config.set_floatx("float32")


def _models(keras):
    L = keras.layers
    return {
        "lstm_stack": (keras.Sequential([keras.Input((7, 3)), L.LSTM(5, return_sequences=True), L.Dropout(0.3),
                                         L.LSTM(4), L.Dense(2, activation="softmax")]), "float"),
        "gru_both": (keras.Sequential([keras.Input((7,)), L.Embedding(11, 4), L.GRU(5, return_sequences=True),
                                       L.GRU(3, reset_after=False, return_sequences=True, go_backwards=True),
                                       L.Flatten(), L.Dense(2)]), "ids"),
        "bidirectional": (keras.Sequential([keras.Input((6,)), L.Embedding(9, 4),
                                            L.Bidirectional(L.LSTM(3, return_sequences=True)),
                                            L.Bidirectional(L.GRU(2), merge_mode="sum"),
                                            L.Dense(3, activation="tanh")]), "ids"),
        "simple_rnn": (keras.Sequential([keras.Input((5, 2)), L.SimpleRNN(4, activation="relu", return_sequences=True),
                                         L.SimpleRNN(3, use_bias=False), L.Dense(1, activation="sigmoid")]), "float"),
        "masked": (keras.Sequential([keras.Input((6,)), L.Embedding(9, 4, mask_zero=True),
                                     L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="ave"),
                                     L.LSTM(2), L.Dense(2)]), "ids"),
    }


def _inputs(kind, model, rng):
    shape = (4, *model.input_shape[1:])
    if kind == "ids":
        x = rng.integers(1, 9, size=shape)
        x[0, 4:] = 0  # right padding (masked where mask_zero)
        x[1, 2:] = 0
        return x
    return rng.standard_normal(shape)


def _randomize(model, rng):
    """Non-trivial weights everywhere (biases included) so that a swapped block would show."""
    model.set_weights([rng.uniform(-0.6, 0.6, w.shape) for w in model.get_weights()])


@pytest.mark.parametrize("name", ["lstm_stack", "gru_both", "bidirectional", "simple_rnn", "masked"])
def test_keras_file_gives_the_same_outputs(keras, name, tmp_path):
    rng = np.random.default_rng(0)
    model, kind = _models(keras)[name]
    _randomize(model, rng)
    x = _inputs(kind, model, rng)
    expected = np.asarray(model.predict(x, verbose=0))
    path = tmp_path / "model.keras"
    model.save(path)
    ours = interop.load_keras(path)
    np.testing.assert_allclose(ours.forward(x), expected, rtol=0, atol=TOL)
    # the weights-only file with the architecture beside it gives the same model
    weights_path = tmp_path / "model.weights.h5"
    model.save_weights(weights_path)
    config_path = tmp_path / "model.json"
    config_path.write_text(model.to_json())
    again = interop.load_keras(weights_path, config=config_path)
    np.testing.assert_allclose(again.forward(x), expected, rtol=0, atol=TOL)


def test_loaded_model_trains_and_saves(keras, tmp_path):
    model, _ = _models(keras)["lstm_stack"]
    model.save(tmp_path / "m.keras")
    ours = interop.load_keras(tmp_path / "m.keras")
    x = np.random.default_rng(1).standard_normal((2, 7, 3))
    y = ours.forward(x)
    ours.backward(np.ones_like(y))  # a plain rnnlab model: gradients flow
    ours.save(tmp_path / "m.npz")
    np.testing.assert_array_equal(rnnlab.load(tmp_path / "m.npz").eval().forward(x), ours.eval().forward(x))


def test_unsupported_layers_and_options_are_refused_by_name(keras, tmp_path):
    L = keras.layers
    cases = [
        (keras.Sequential([keras.Input((5, 2)), L.Conv1D(3, 2, name="conv"), L.LSTM(2)]), "'conv'.*Conv1D"),
        (keras.Sequential([keras.Input((5, 2)), L.LSTM(2, recurrent_dropout=0.2, name="drop_lstm")]),
         "'drop_lstm'.*recurrent_dropout"),
        (keras.Sequential([keras.Input((5, 2)), L.LSTM(2, activation="relu", name="relu_lstm")]),
         "'relu_lstm'.*activation='relu'"),
        (keras.Sequential([keras.Input((5, 2)), L.GRU(2), L.Dense(1, activation="elu", name="out")]),
         "'out'.*activation='elu'"),
        (keras.Sequential([keras.Input((5,)), L.Embedding(5, 2, mask_zero=True),
                           L.LSTM(2, return_sequences=True, name="seq")]), "'seq'.*zero_output_for_mask"),
        (keras.Sequential([keras.Input((5, 2)), L.Bidirectional(L.LSTM(2), merge_mode=None, name="bi")]),
         "'bi'.*merge_mode=None"),
    ]
    for model, pattern in cases:
        model.save(tmp_path / "bad.keras")
        with pytest.raises(UnsupportedError, match=pattern):
            interop.load_keras(tmp_path / "bad.keras")
    inputs = keras.Input((5, 2))
    functional = keras.Model(inputs, L.LSTM(2)(inputs))
    functional.save(tmp_path / "functional.keras")
    with pytest.raises(UnsupportedError, match="'Functional'"):
        interop.load_keras(tmp_path / "functional.keras")


def test_config_is_read_as_data_only(tmp_path):
    """A config naming a class that is not a supported layer is refused, never looked up."""
    require_keras()
    import h5py

    weights = tmp_path / "w.h5"
    with h5py.File(weights, "w"):
        pass
    path = tmp_path / "evil.keras"
    config = {"class_name": "Sequential", "config": {"layers": [
        {"class_name": "Lambda", "config": {"name": "lambda", "function": "__import__('os').system('x')"}}]}}
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.write(weights, "model.weights.h5")
    with pytest.raises(UnsupportedError, match="'lambda' is a Keras Lambda"):
        interop.load_keras(path)
    with pytest.raises(ValueError, match="no architecture: pass config="):
        interop.load_keras(weights)
    with pytest.raises(FileNotFoundError):
        interop.load_keras(tmp_path / "missing.keras")


def test_keras_file_to_onnx_through_the_cli(keras, tmp_path):
    """`rnnlab export model.keras --format onnx`: onnxruntime gives Keras's outputs (float32)."""
    from rnnlab.cli import main

    try:
        import onnxruntime as ort
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("needs onnxruntime")
    model, _ = _models(keras)["bidirectional"]
    _randomize(model, np.random.default_rng(5))
    x = _inputs("ids", model, np.random.default_rng(6))
    model.save(tmp_path / "m.keras")
    assert main(["export", str(tmp_path / "m.keras"), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 0
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"ids": x})[0], model.predict(x, verbose=0), rtol=0, atol=1e-5)


def test_recurrent_layers_agree_to_float64_rounding(keras, tmp_path):
    """Without Dense (which Keras's torch backend rounds through float32), LSTM and GRU stacks
    agree with Keras to 1e-12: the weights are copied in the right gate order, not nearly."""
    L = keras.layers
    model = keras.Sequential([keras.Input((9, 3)), L.LSTM(5, return_sequences=True, go_backwards=True),
                              L.Bidirectional(L.GRU(4, return_sequences=True)), L.LSTM(3)])
    rng = np.random.default_rng(7)
    _randomize(model, rng)
    x = rng.standard_normal((3, 9, 3))
    model.save(tmp_path / "r.keras")
    np.testing.assert_allclose(interop.load_keras(tmp_path / "r.keras").forward(x), model.predict(x, verbose=0),
                               rtol=0, atol=1e-12)
