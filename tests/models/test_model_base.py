"""Model and Sequential: chaining, building, masks, config, custom models, the Keras summary."""
import json
import re
import threading
import tracemalloc

import numpy as np
import pytest

import rnnlab as rl
from gradcheck import check_layer_gradients
from rnnlab import layers as L
from rnnlab.layers import ShapeError
from rnnlab.layers.base import is_planning, planning, reset_name_counts


@pytest.fixture(autouse=True)
def fresh_names():
    """Keras-style default names (dense, dense_1, ...) count from zero in every test."""
    reset_name_counts()
    yield
    reset_name_counts()


def keras_table(text: str) -> str:
    """The expected table with Keras 2's trailing spaces restored: every table row (a line
    starting with a space, or blank) is padded to the 65-character line."""
    lines = text.strip("\n").split("\n")
    return "\n".join(line.ljust(65) if line == "" or line.startswith(" ") else line for line in lines)


# ---- the summary table ----------------------------------------------------------------------

DENSE_TABLE = """
Model: "sequential"
_________________________________________________________________
 Layer (type)                Output Shape              Param #
=================================================================
 dense (Dense)               (None, 20, 16)            112

 flatten (Flatten)           (None, 320)               0

 dense_1 (Dense)             (None, 1)                 321

=================================================================
Total params: 433
Trainable params: 433
Non-trainable params: 0
_________________________________________________________________
"""


def test_summary_prints_the_keras_table_before_any_data():
    model = rl.Sequential([L.Input((20, 6)), L.Dense(16), L.Flatten(), L.Dense(1)])
    printed = []
    text = model.summary(print_fn=printed.append)
    assert text == keras_table(DENSE_TABLE)
    assert printed == text.split("\n")
    header = text.split("\n")[2]
    assert header.index("Output Shape") == 29 and header.index("Param #") == 55 and len(header) == 65


def test_summary_totals_use_thousands_separators_and_count_non_trainable():
    frozen = L.Dense(1000, name="frozen", trainable=False)
    model = rl.Sequential([L.Input((100,)), frozen, L.Dense(2)], name="big")
    text = model.summary(print_fn=None)
    assert ' frozen (Dense)              (None, 1000)              101000' in text
    assert "Total params: 103,002\nTrainable params: 2,002\nNon-trainable params: 101,000" in text
    assert model.count_params() == 103002
    data = model.summary_dict()
    assert data["total_params"] == 103002 and data["non_trainable_params"] == 101000
    assert [r["output_shape"] for r in data["layers"]] == [(None, 1000), (None, 2)]


def test_summary_wraps_a_long_name_like_keras():
    model = rl.Sequential([L.Input((3,)), L.Dense(2, name="a_very_long_layer_name_for_wrapping")])
    lines = model.summary(print_fn=None).split("\n")
    # as in Keras 2: 27 characters fit, the leading space pushes the next cell one column right
    assert lines[4] == (" a_very_long_layer_name_for_  (None, 2)".ljust(55) + "8").ljust(65)
    assert lines[5] == " wrapping (Dense)".ljust(65)


def test_summary_of_unbuilt_model_is_a_clear_error():
    model = rl.Sequential([L.Dense(3)], name="lazy")
    with pytest.raises(ValueError, match="lazy.*not built.*forward"):
        model.summary()


# ---- Sequential behaviour -----------------------------------------------------------------


def test_sequential_forward_backward_equal_the_chained_layers(float64):
    rng = np.random.default_rng(0)
    d1, d2 = L.Dense(5, activation="tanh", seed=1), L.Dense(2, seed=2)
    model = rl.Sequential([L.Input((4, 3)), d1, L.Flatten(), d2])
    x = rng.standard_normal((6, 4, 3))
    y = model.forward(x)
    h = np.tanh(x @ d1.kernel + d1.bias)
    np.testing.assert_allclose(y, h.reshape(6, -1) @ d2.kernel + d2.bias)
    assert len(model.params) == 4 and model.params[0] is d1.kernel
    errors = check_layer_gradients(model, x)     # every parameter and dL/dx
    assert set(errors) == {"param0", "param1", "param2", "param3", "input"}


def test_sequential_builds_lazily_without_input_and_add_builds_eagerly_after(float64):
    model = rl.Sequential([L.Dense(4)])
    assert not model.built and model.params == []
    model.forward(np.zeros((2, 3)))
    assert model.built and model.input_shape == (3,)
    head = L.Dense(2)
    model.add(head)
    assert head.built and head.kernel.shape == (4, 2)      # before any data reaches it
    assert model.forward(np.zeros((5, 3))).shape == (5, 2)
    with pytest.raises(ValueError, match="Input layer can only come first"):
        model.add(L.Input((3,)))


def test_sequential_input_checks_name_the_layer_and_shapes():
    model = rl.Sequential([L.Input((20, 6), name="inp"), L.Dense(1)])
    with pytest.raises(ShapeError, match=r"inp.*\(batch, 20, 6\).*\(2, 20, 5\)"):
        model.forward(np.zeros((2, 20, 5), dtype=np.float32))


class MaskRecorder(L.Layer):
    """Test layer: identity that remembers the mask it was given."""

    def forward(self, x, mask=None):
        self.maybe_build(x)
        self.seen_mask = mask
        return x

    def backward(self, dout):
        return dout


def test_sequential_passes_and_propagates_masks():
    ids = np.array([[3, 4, 0], [5, 0, 0]])
    first, second = MaskRecorder(), MaskRecorder()
    dense = L.Dense(2)
    model = rl.Sequential([L.Embedding(6, 4, mask_zero=True), first, dense, L.Flatten(), second])
    out = model.forward(ids)
    assert out.shape == (2, 6)
    np.testing.assert_array_equal(first.seen_mask, ids != 0)   # from Embedding.compute_mask
    assert second.seen_mask is None                              # dropped once the time axis is gone
    given = np.array([[True, False, False], [True, True, False]])
    model.forward(ids, mask=given)
    np.testing.assert_array_equal(first.seen_mask, ids != 0)    # a layer's own mask wins
    assert model.backward(np.ones_like(out)) is None            # integer ids: no input gradient
    assert dense.grads[0].any()


def test_sequential_train_eval_reaches_dropout():
    drop = L.Dropout(0.5, seed=0)
    model = rl.Sequential([L.Input((50,)), drop])
    x = np.ones((4, 50), dtype=np.float32)
    assert (model.forward(x) == 0).any()
    assert model.eval() is model and not drop.training
    np.testing.assert_array_equal(model.forward(x), x)
    model.train()
    assert drop.training


def test_sequential_config_round_trip_through_json(float64):
    model = rl.Sequential([L.Input((4,)), L.Dense(3, activation="relu"), L.Dropout(0.1), L.Dense(2)],
                          name="mlp")
    spec = json.loads(json.dumps(L.layer_to_dict(model)))
    clone = L.layer_from_dict(spec)
    assert type(clone) is rl.Sequential and clone.name == "mlp"
    assert [type(layer).__name__ for layer in clone.sublayers] == ["Input", "Dense", "Dropout", "Dense"]
    assert [p.shape for p in clone.params] == [p.shape for p in model.params]   # built eagerly
    clone.set_weights(model.get_weights())
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_array_equal(clone.eval().forward(x), model.eval().forward(x))
    lazy = rl.Sequential([L.Dense(3)])
    lazy.forward(np.zeros((1, 7)))
    rebuilt = rl.Sequential.from_config(json.loads(json.dumps(lazy.get_config())))
    assert rebuilt.sublayers[0].kernel.shape == (7, 3)          # from build_input_shape


# ---- custom models ------------------------------------------------------------------------


class ResidualNet(rl.Model):
    """Test model: y = Dense2(x + tanh(Dense1(x))), written by hand."""

    def __init__(self, width, out, **kwargs):
        super().__init__(**kwargs)
        self.width, self.out = width, out
        self.inner = L.Dense(width, activation="tanh", seed=1)
        self.head = L.Dense(out, seed=2)
        self.sublayers += [self.inner, self.head]

    def forward(self, x):
        return self.head.forward(x + self.inner.forward(x))

    def backward(self, dout):
        dh = self.head.backward(dout)
        return dh + self.inner.backward(dh)

    def get_config(self):
        return {**super().get_config(), "width": self.width, "out": self.out}


def test_custom_model_gradients_summary_and_save_load(float64, tmp_path):
    model = ResidualNet(4, 2)
    x = np.random.default_rng(1).standard_normal((3, 4))
    check_layer_gradients(model, x)
    rows = model.summary_rows()
    assert [(r["name"], r["output_shape"], r["params"]) for r in rows] == [
        ("dense", (None, 4), 20), ("dense_1", (None, 2), 10)]
    assert model.summary(print_fn=None).startswith('Model: "residual_net"')
    model.save(tmp_path / "res.npz")
    clone = rl.load(tmp_path / "res.npz")        # rebuilt through the registry, then built lazily
    assert type(clone) is ResidualNet and clone.width == 4
    np.testing.assert_array_equal(clone.forward(x), model.forward(x))


def test_shared_layer_counts_once():
    model = ResidualNet(3, 3)
    model.forward(np.zeros((1, 3), dtype=np.float32))
    model.sublayers.append(model.head)           # the same layer twice: a tied weight
    assert model.count_params() == 12 + 12
    assert model.summary_dict()["total_params"] == 24


def test_model_base_forward_explains_itself():
    with pytest.raises(NotImplementedError, match="custom Model writes its own forward"):
        rl.Model(name="m").forward(np.zeros(1))


# ---- the issue's recurrent models (layers/recurrent.py) -------------------------------------

SIMPLE_RNN_TABLE = """
Model: "sequential"
_________________________________________________________________
 Layer (type)                Output Shape              Param #
=================================================================
 simple_rnn (SimpleRNN)      (None, 20, 16)            368

 simple_rnn_1 (SimpleRNN)    (None, 32)                1568

 flatten (Flatten)           (None, 32)                0

 dense (Dense)               (None, 1)                 33

=================================================================
Total params: 1,969
Trainable params: 1,969
Non-trainable params: 0
_________________________________________________________________
"""

LSTM_TABLE = """
Model: "sequential"
_________________________________________________________________
 Layer (type)                Output Shape              Param #
=================================================================
 lstm (LSTM)                 (None, 21, 16)            1152

 lstm_1 (LSTM)               (None, 21, 32)            6272

 flatten (Flatten)           (None, 672)               0

 dense (Dense)               (None, 1)                 673

=================================================================
Total params: 8,097
Trainable params: 8,097
Non-trainable params: 0
_________________________________________________________________
"""


def test_issue_simple_rnn_model_summary_and_shapes():
    model = rl.Sequential([L.Input((20, 6)), L.SimpleRNN(16, return_sequences=True),
                           L.SimpleRNN(32), L.Flatten(), L.Dense(1)])
    assert model.summary(print_fn=None) == keras_table(SIMPLE_RNN_TABLE)
    x = np.random.default_rng(0).standard_normal((5, 20, 6)).astype(np.float32)
    y = model.forward(x)
    assert y.shape == (5, 1) and y.dtype == np.float32
    dx = model.backward(np.ones_like(y))
    assert dx.shape == x.shape and all(g.any() for g in model.grads)


def test_issue_lstm_model_summary():
    model = rl.Sequential([L.Input((21, 1)), L.LSTM(16, return_sequences=True),
                           L.LSTM(32, return_sequences=True), L.Flatten(), L.Dense(1)])
    assert model.summary(print_fn=None) == keras_table(LSTM_TABLE)
    assert model.forward(np.zeros((2, 21, 1), dtype=np.float32)).shape == (2, 1)


@pytest.mark.parametrize("reset_after,counts,total", [(True, (1152, 4800), "5,985"),
                                                        (False, (1104, 4704), "5,841")])
def test_gru_counts_match_keras_for_both_reset_after(reset_after, counts, total):
    # Keras: 3 * (D*H + H*H + H) weights, plus 3*H more with reset_after (a second bias row)
    model = rl.Sequential([L.Input((20, 6)), L.GRU(16, return_sequences=True, reset_after=reset_after),
                           L.GRU(32, reset_after=reset_after), L.Dense(1)])
    rows = model.summary_rows()
    assert (rows[0]["params"], rows[1]["params"]) == counts
    text = model.summary(print_fn=None)
    assert re.search(rf"^ gru \(GRU\) +\(None, 20, 16\) +{counts[0]} *$", text, flags=re.M)
    assert f"Total params: {total}\n" in text


def test_same_parameters_run_on_any_length():
    model = rl.Sequential([L.Input((None, 3)), L.LSTM(8), L.Dense(1)])
    count = model.count_params()
    for T in (10, 20, 1000):
        assert model.forward(np.zeros((2, T, 3), dtype=np.float32)).shape == (2, 1)
    assert model.count_params() == count == 4 * (3 * 8 + 8 * 8 + 8) + 9


def test_stacked_recurrent_sequential_gradients(float64):
    model = rl.Sequential([L.SimpleRNN(3, return_sequences=True, seed=0), L.LSTM(2, seed=1), L.Dense(1, seed=2)])
    x = np.random.default_rng(4).standard_normal((2, 4, 2))
    errors = check_layer_gradients(model, x)
    assert len(errors) == len(model.params) + 1


def test_model_docstring_example_runs(tmp_path, monkeypatch):
    """The worked custom-model example in the Model docstring runs as written."""
    doc = rl.Model.__doc__
    start = doc.rindex("\n", 0, doc.index("import rnnlab as rl")) + 1
    code = doc[start:doc.index("``summary()`` shows")]
    code = "\n".join(line[8:] for line in code.split("\n"))
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    namespace = {"ids": rng.integers(1, 1000, (4, 7)), "labels": rng.integers(0, 2, 4)}
    namespace["ids"][0, 5:] = 0                  # padding
    exec(compile(code, "Model docstring", "exec"), namespace)
    model = namespace["model"]
    assert np.isfinite(namespace["value"])
    clone = rl.load(tmp_path / "clf.npz")
    assert type(clone).__name__ == "Classifier"
    np.testing.assert_array_equal(clone.forward(namespace["ids"]), model.forward(namespace["ids"]))


def test_a_planned_model_has_the_real_shapes_and_takes_no_memory():
    """planning(): what the checkpoint and Keras readers compare before they allocate; the plan
    is the planning thread's alone."""
    def build():
        return rl.Sequential([L.Input((5,)), L.Embedding(50000, 64), L.Bidirectional(L.LSTM(256)), L.Dense(1000)])

    tracemalloc.start()
    try:
        with planning():
            plan = build()
            other_thread = []
            thread = threading.Thread(target=lambda: other_thread.append(is_planning()))
            thread.start()
            thread.join()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    real = build()
    assert [p.shape for p in plan.params] == [p.shape for p in real.params]
    assert plan.count_params() == real.count_params() == 3_200_000 + 2 * 4 * 256 * (64 + 256 + 1) + 512 * 1000 + 1000
    assert peak < 1 << 20 and other_thread == [False] and not is_planning()
