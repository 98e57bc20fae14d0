"""Every bad constructor argument and every bad input gives an error naming the layer (or
model), the argument and the value; the shared checks of ``rnnlab.validate`` themselves."""
import numpy as np
import pytest

from rnnlab import layers as L
from rnnlab import validate
from rnnlab.layers.base import ShapeError
from rnnlab.models.base import Sequential
from rnnlab.models.captioner import Captioner
from rnnlab.models.classifier import SequenceClassifier as Classifier
from rnnlab.models.lm import LanguageModel
from rnnlab.models.seq2seq import Seq2Seq
from rnnlab.models.stack import RecurrentStack, SequencePooling
from rnnlab.models.tagger import Tagger


# ---- rnnlab.validate --------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [1, 7, np.int64(3), np.uint8(2), np.int32(1)])
def test_positive_int_accepts_python_and_numpy_integers(value):
    out = validate.positive_int("LSTM", "units", value)
    assert out == int(value) and type(out) is int


@pytest.mark.parametrize("value", [0, -3, 2.5, 2.0, "8", True, False, np.bool_(True), None, [4], 1 + 0j,
                                   np.float64(3.0)])
def test_positive_int_refuses(value):
    with pytest.raises(ValueError, match=r"^LSTM: units must be a positive integer, got ") as err:
        validate.positive_int("LSTM", "units", value)
    assert isinstance(err.value, TypeError)   # ArgumentError is both


def test_messages_name_owner_argument_and_value():
    with pytest.raises(ValueError, match=r"^LSTM: units must be a positive integer, got 2\.5$"):
        validate.positive_int("LSTM", "units", 2.5)
    with pytest.raises(ValueError, match=r"^Dropout: rate must lie in \[0, 1\), got 1$"):
        validate.rate("Dropout", "rate", 1.0)
    with pytest.raises(ValueError, match=r"^--dropout: rate must be a finite number, got nan$"):
        validate.rate("--dropout", "rate", float("nan"))
    with pytest.raises(ValueError, match=r"^X: mode must be one of a, b, got 'c'$"):
        validate.choice("X", "mode", "c", ("a", "b"))
    with pytest.raises(ValueError, match=r"^X: k must be an integer in \[0, 9\], got 10$"):
        validate.integer("X", "k", 10, 0, 9)


@pytest.mark.parametrize("value,ok", [(0.0, True), (0.5, True), (np.float32(0.25), True), (0, True),
                                      (1.0, False), (-0.1, False), (float("inf"), False), ("0.1", False),
                                      (True, False), (None, False)])
def test_rate(value, ok):
    if ok:
        assert validate.rate("o", "r", value) == float(value)
    else:
        with pytest.raises(ValueError, match="o: r must"):
            validate.rate("o", "r", value)


def test_finite_float_bounds_open_and_closed():
    assert validate.finite_float("o", "s", 0.0, low=0.0) == 0.0
    with pytest.raises(ValueError, match=r"o: s must lie in \(0, inf\), got 0"):
        validate.finite_float("o", "s", 0.0, low=0.0, low_open=True)
    with pytest.raises(ValueError, match=r"o: s must lie in \(-inf, 2\], got 3"):
        validate.finite_float("o", "s", 3, high=2.0)


def test_flag_cell_seed_text_initializer():
    assert validate.flag("o", "f", np.bool_(True)) is True
    with pytest.raises(ValueError, match="o: f must be True or False, got 'no'"):
        validate.flag("o", "f", "no")
    assert validate.cell("o", "cell", "SimpleRNN") == "rnn"
    with pytest.raises(ValueError, match=r"o: cell: unknown recurrent cell 'lstmm'"):
        validate.cell("o", "cell", "lstmm")
    with pytest.raises(ValueError, match=r"o: cell must be a cell name \(rnn, lstm, gru\), got 3"):
        validate.cell("o", "cell", 3)
    assert validate.seed("o", np.int64(4)) == 4 and validate.seed("o", None) is None
    with pytest.raises(ValueError, match="o: seed must be a non-negative integer, got -1"):
        validate.seed("o", -1)
    with pytest.raises(ValueError, match="o: name must be a non-empty string, got 3"):
        validate.text("o", "name", 3)
    assert validate.initializer("o", "init", "uniform:0.1") == "uniform:0.1"
    with pytest.raises(ValueError, match="o: init: unknown initializer 'glorot'"):
        validate.initializer("o", "init", "glorot")
    with pytest.raises(ValueError, match=r"o: init: 'uniform:x': could not convert"):
        validate.initializer("o", "init", "uniform:x")


@pytest.mark.parametrize("array,kinds,ok", [
    (np.zeros(3), "fiu", True), (np.zeros(3, dtype=np.int8), "fiu", True),
    (np.zeros(3, dtype=complex), "fiu", False), (np.array(["a"]), "fiu", False),
    (np.array([None]), "fiu", False), (np.zeros(3, dtype=bool), "fiu", False),
    (np.zeros(3, dtype=bool), "b", True), ([1.0, 2.0], "fiu", False)])
def test_array_dtype(array, kinds, ok):
    if ok:
        assert validate.array_dtype("o", "x", array, kinds) is array
    else:
        with pytest.raises(TypeError, match="o: x must"):
            validate.array_dtype("o", "x", array, kinds)


# ---- layer constructors -----------------------------------------------------------------------------
BAD_LAYER_ARGS = [
    # (factory, message regex)
    (lambda: L.LSTM(2.5), r"LSTM: units must be a positive integer, got 2\.5"),
    (lambda: L.LSTM("8"), r"LSTM: units must be a positive integer, got '8'"),
    (lambda: L.GRU(0), r"GRU: units must be a positive integer, got 0"),
    (lambda: L.SimpleRNN(True), r"SimpleRNN: units must be a positive integer, got True"),
    (lambda: L.LSTMCell(-1), r"LSTMCell: units must be a positive integer, got -1"),
    (lambda: L.SimpleRNN(4, activation="softmax"), r"SimpleRNN: activation must be one of tanh, relu, "
                                                   r"sigmoid, linear, got 'softmax'"),
    (lambda: L.RNNCell(4, activation=None), r"RNNCell: activation must be one of .*got None"),
    (lambda: L.LSTM(4, return_sequences="yes"), r"LSTM: return_sequences must be True or False, got 'yes'"),
    (lambda: L.GRU(4, reset_after=1), r"GRU: reset_after must be True or False, got 1"),
    (lambda: L.LSTM(4, unit_forget_bias=None), r"LSTM: unit_forget_bias must be True or False"),
    (lambda: L.LSTM(4, kernel_initializer="glorot"), r"LSTM: kernel_initializer: unknown initializer"),
    (lambda: L.LSTM(4, seed=-2), r"LSTM: seed must be a non-negative integer, got -2"),
    (lambda: L.LSTM(4, seed=1.5), r"LSTM: seed must be a non-negative integer, got 1\.5"),
    (lambda: L.LSTM(4, name=7), r"LSTM: name must be a non-empty string, got 7"),
    (lambda: L.LSTM(4, trainable="no"), r"LSTM: trainable must be True or False"),
    (lambda: L.Bidirectional(L.LSTM(4), merge_mode="cat"), r"bidirectional.*merge_mode must be one of "
                                                           r"concat, sum, ave, mul, None, got 'cat'"),
    (lambda: L.Bidirectional(L.Dense(4)), r"Bidirectional wraps a SimpleRNN, LSTM or GRU layer, got Dense"),
    (lambda: L.Dense(0), r"Dense: units must be a positive integer, got 0"),
    (lambda: L.Dense(3.0), r"Dense: units must be a positive integer, got 3\.0"),
    (lambda: L.Dense(3, activation="gelu"), r"Dense: activation must be one of .*got 'gelu'"),
    (lambda: L.Dense(3, use_bias="false"), r"Dense: use_bias must be True or False"),
    (lambda: L.Embedding(0, 4), r"Embedding: input_dim must be a positive integer, got 0"),
    (lambda: L.Embedding(10, "4"), r"Embedding: output_dim must be a positive integer, got '4'"),
    (lambda: L.Embedding(10, 4, mask_zero=0), r"Embedding: mask_zero must be True or False, got 0"),
    (lambda: L.Dropout(1.0), r"Dropout: rate must lie in \[0, 1\), got 1"),
    (lambda: L.Dropout(-0.5), r"Dropout: rate must lie in \[0, 1\), got -0\.5"),
    (lambda: L.Dropout("0.5"), r"Dropout: rate must be a finite number, got '0\.5'"),
    (lambda: L.Dropout(float("nan")), r"Dropout: rate must be a finite number, got nan"),
    (lambda: L.Dropout(0.1, noise_shape=(None, 0)), r"Dropout: noise_shape\[1\] must be a positive integer"),
    (lambda: L.Dropout(0.1, noise_shape=3), r"Dropout: noise_shape must be a tuple"),
    (lambda: L.Activation("swish"), r"Activation: activation must be one of .*got 'swish'"),
    (lambda: L.Input((0, 3)), r"Input: shape\[0\] must be a positive integer, got 0"),
    (lambda: L.Input(5), r"Input: shape must be a tuple"),
    (lambda: L.BahdanauAttention(2.5), r"BahdanauAttention: units must be a positive integer, got 2\.5"),
    (lambda: L.LuongAttention("concat"), r"LuongAttention: score must be one of dot, general, got 'concat'"),
]


@pytest.mark.parametrize("factory,message", BAD_LAYER_ARGS, ids=[m[:40] for _, m in BAD_LAYER_ARGS])
def test_layer_constructor_errors(factory, message):
    with pytest.raises((ValueError, TypeError), match=message):
        factory()


def test_numpy_integers_accepted_and_stored_as_int():
    layer = L.LSTM(np.int64(4), seed=np.int32(3))
    assert layer.units == 4 and type(layer.units) is int and type(layer.seed) is int
    emb = L.Embedding(np.uint16(10), np.int8(3))
    assert (emb.input_dim, emb.output_dim) == (10, 3)
    assert L.Dropout(np.float32(0.25)).rate == 0.25
    assert L.Bidirectional(L.GRU(np.int64(2), seed=np.int64(1))).backward_layer.seed == 2


# ---- model constructors -----------------------------------------------------------------------------
BAD_MODEL_ARGS = [
    (lambda: RecurrentStack(2.5), r"RecurrentStack: units must be a positive integer, got 2\.5"),
    (lambda: RecurrentStack(4, layers=0), r"RecurrentStack: layers must be a positive integer, got 0"),
    (lambda: RecurrentStack(4, cell="transformer"), r"RecurrentStack: cell: unknown recurrent cell"),
    (lambda: RecurrentStack(4, dropout=1.5), r"RecurrentStack: dropout must lie in \[0, 1\)"),
    (lambda: RecurrentStack(4, bidirectional="yes"), r"RecurrentStack: bidirectional must be True or False"),
    (lambda: SequencePooling("median"), r"pooling must be one of last, mean, max, got 'median'"),
    (lambda: Classifier(1, vocab_size=10), r"SequenceClassifier: classes must be an integer in \[2, inf\], got 1"),
    (lambda: Classifier(2.5, vocab_size=10), r"SequenceClassifier: classes must be an integer >= 2, got 2\.5"),
    (lambda: Classifier(3, vocab_size="10"), r"SequenceClassifier: vocab_size must be a positive integer, got '10'"),
    (lambda: Classifier(3, input_dim=0), r"SequenceClassifier: input_dim must be a positive integer, got 0"),
    (lambda: Classifier(3, vocab_size=10, hidden=-4), r"SequenceClassifier: hidden must be a positive integer"),
    (lambda: Classifier(3, vocab_size=10, pooling="sum"), r"SequenceClassifier: pooling must be one of last, mean, max"),
    (lambda: Classifier(3, vocab_size=10, dropout=1), r"SequenceClassifier: dropout must lie in \[0, 1\)"),
    (lambda: Classifier(3, vocab_size=10, cell=None), r"SequenceClassifier: cell must be a cell name"),
    (lambda: Tagger(10, 5, 0), r"Tagger: tags must be a positive integer, got 0"),
    (lambda: Tagger(10, 5.5, 3), r"Tagger: char_vocab_size must be a positive integer, got 5\.5"),
    (lambda: Tagger(10, 5, 3, cell="lstmm"), r"Tagger: cell: unknown recurrent cell 'lstmm'"),
    (lambda: Tagger(10, 5, 3, dropout=-0.1), r"Tagger: dropout must lie in \[0, 1\)"),
    (lambda: Captioner(0, 10), r"Captioner: feature_dim must be a positive integer, got 0"),
    (lambda: Captioner(4, 10, eos_id=10), r"Captioner: eos_id must be an integer in \[0, 9\], got 10"),
    (lambda: Captioner(4, 10, bos_id=-1), r"Captioner: bos_id must be an integer in \[0, 9\], got -1"),
    (lambda: Captioner(4, 10, feed_features="1"), r"Captioner: feed_features must be True or False"),
    (lambda: LanguageModel(0), r"LanguageModel: vocab_size must be a positive integer, got 0"),
    (lambda: LanguageModel(10, hidden=8.0), r"LanguageModel: hidden must be a positive integer, got 8\.0"),
    (lambda: LanguageModel(10, dropout=1.0), r"LanguageModel: dropout must lie in \[0, 1\)"),
    (lambda: LanguageModel(10, init_scale=0.0), r"LanguageModel: init_scale must lie in \(0, inf\)"),
    (lambda: LanguageModel(10, cell="lstmm"), r"LanguageModel: cell: unknown recurrent cell"),
    (lambda: Seq2Seq(10, 12, hidden=0), r"Seq2Seq: hidden must be a positive integer, got 0"),
    (lambda: Seq2Seq(10, 12, attention="dot"), r"Seq2Seq: attention must be one of none, bahdanau, luong"),
    (lambda: Seq2Seq(10, 12, attention="luong", score="cosine"), r"Seq2Seq: score must be one of dot, general"),
    (lambda: Seq2Seq(10, 12, attention="bahdanau", attention_units=0),
     r"Seq2Seq: attention_units must be a positive integer, got 0"),
    (lambda: Seq2Seq(10, 12, eos_id=12), r"Seq2Seq: eos_id must be an integer in \[0, 11\], got 12"),
    (lambda: Seq2Seq(10, 12, layers=2.0), r"Seq2Seq: layers must be a positive integer, got 2\.0"),
    (lambda: Seq2Seq(10, 12, cell_options=[1]), r"Seq2Seq: cell_options must be a dict"),
    (lambda: Sequential(L.LSTM(3)), r"Sequential: layers must be a list of layers, got LSTM"),
    (lambda: Sequential([L.LSTM(3), "dense"]), r"add\(\) takes a Layer, got str"),
]


@pytest.mark.parametrize("factory,message", BAD_MODEL_ARGS, ids=[m[:40] for _, m in BAD_MODEL_ARGS])
def test_model_constructor_errors(factory, message):
    with pytest.raises((ValueError, TypeError), match=message):
        factory()


def test_models_accept_numpy_integers():
    model = Classifier(np.int64(3), vocab_size=np.int32(20), emb=np.int64(4), hidden=np.int64(5), seed=1)
    assert (model.classes, model.vocab_size, model.hidden) == (3, 20, 5)
    assert type(model.vocab_size) is int


# ---- inputs -----------------------------------------------------------------------------------------
def _recurrent_layers():
    return [L.SimpleRNN(3, name="r"), L.LSTM(3, name="r"), L.GRU(3, name="r"),
            L.Bidirectional(L.GRU(3), name="r")]


@pytest.mark.parametrize("x,dtype_words", [
    (np.zeros((2, 4, 5), dtype=complex), r"complex128 \(complex\)"),
    (np.zeros((2, 4, 5), dtype=object), r"object \(object\)"),
    (np.full((2, 4, 5), "a"), r"<U1 \(string\)"),
    (np.zeros((2, 4, 5), dtype=bool), r"bool \(boolean\)")])
@pytest.mark.parametrize("make", range(4))
def test_recurrent_layers_refuse_non_real_inputs(x, dtype_words, make):
    layer = _recurrent_layers()[make]
    with pytest.raises(TypeError, match=rf"layer 'r' .*: input must hold .*numbers, got dtype {dtype_words} "
                                        rf"with shape \(2, 4, 5\)"):
        layer.forward(x)


def test_recurrent_input_that_is_not_an_array():
    with pytest.raises(TypeError, match=r"layer 'r' \(LSTM\): input must be an array, got list"):
        L.LSTM(3, name="r").forward([[[1.0]]])


@pytest.mark.parametrize("layer,x", [
    (L.Dense(2, name="d"), np.zeros((3, 4), dtype=np.complex64)),
    (L.Dropout(0.5, name="d"), np.array([["a"]])),
    (L.Activation("tanh", name="d"), np.zeros((2, 2), dtype=object)),
    (L.LSTMCell(2, name="d"), np.zeros((3, 4), dtype=complex)),
    (L.GRUCell(2, name="d"), np.zeros((3, 4), dtype=bool))])
def test_other_layers_refuse_non_real_inputs(layer, x):
    with pytest.raises(TypeError, match=rf"layer 'd' .*: input must hold .*got dtype {x.dtype}"):
        layer.forward(x)


def test_cell_refuses_a_complex_state():
    cell = L.RNNCell(2, name="c")
    with pytest.raises(TypeError, match=r"layer 'c' .*: state 0 must hold .*complex"):
        cell.forward(np.zeros((3, 4)), [np.zeros((3, 2), dtype=complex)])


def test_recurrent_layer_refuses_a_complex_initial_state():
    with pytest.raises(TypeError, match=r"layer 'r' .*: initial_state\[1\] must hold .*complex"):
        L.LSTM(2, name="r").forward(np.zeros((3, 4, 5)), initial_state=[np.zeros((3, 2)),
                                                                        np.zeros((3, 2), dtype=complex)])


@pytest.mark.parametrize("ids,message", [
    (np.zeros((2, 3)), r"layer 'e' \(Embedding\): token ids must hold integer numbers, got dtype float64"),
    (np.zeros((2, 3), dtype=bool), r"layer 'e' \(Embedding\): token ids must hold integer numbers, got dtype bool"),
    (np.array([[1, 5]]), r"layer 'e' \(Embedding\): token ids must lie in \[0, 5\), got range \[1, 5\]"),
    (np.array([[-1, 2]]), r"layer 'e' \(Embedding\): token ids must lie in \[0, 5\), got range \[-1, 2\]"),
    ("12", r"layer 'e' \(Embedding\): token ids must be an array, got str")])
def test_embedding_ids(ids, message):
    with pytest.raises((ValueError, TypeError), match=message):
        L.Embedding(5, 2, name="e").forward(ids)


def test_embedding_accepts_any_integer_dtype():
    emb = L.Embedding(5, 2, seed=0)
    for dtype in (np.int8, np.uint8, np.int32, np.int64, np.uint64):
        np.testing.assert_array_equal(emb.forward(np.array([[1, 4]], dtype=dtype)), emb.embeddings[[[1, 4]]])


X = np.zeros((2, 4, 3))


@pytest.mark.parametrize("kwargs,error,message", [
    ({"mask": np.ones((2, 3), dtype=bool)}, ShapeError,
     r"mask must have shape \(batch, time\) = \(2, 4\) for input of shape \(2, 4, 3\), got \(2, 3\)"),
    ({"mask": np.ones((4, 2), dtype=bool)}, ShapeError, r"mask must have shape .* got \(4, 2\)"),
    ({"mask": np.ones(2 * 4, dtype=bool)}, ShapeError, r"mask must have shape .* got \(8,\)"),
    ({"mask": np.full((2, 4), 0.5)}, ValueError, r"a float64 mask must hold only 0 and 1"),
    ({"mask": np.full((2, 4), 2)}, ValueError, r"a int64 mask must hold only 0 and 1"),
    ({"mask": np.ones((2, 4), dtype=complex)}, TypeError, r"mask must hold .*got dtype complex128"),
    ({"mask": np.full((2, 4), "1")}, TypeError, r"mask must hold .*got dtype <U1"),
    ({"lengths": np.array([1.0, 2.0])}, TypeError, r"lengths must hold integer numbers, got dtype float64"),
    ({"lengths": np.array([True, False])}, TypeError, r"lengths must hold integer numbers, got dtype bool"),
    ({"lengths": np.array([[1, 2]])}, ShapeError, r"lengths must have shape \(batch,\) = \(2,\) .*got \(1, 2\)"),
    ({"lengths": np.array([5, 1])}, ValueError, r"lengths must lie in \[0, 4\] for input of shape \(2, 4, 3\), "
                                                r"got range \[1, 5\]"),
    ({"lengths": np.array([-1, 1])}, ValueError, r"lengths must lie in \[0, 4\].*got range \[-1, 1\]"),
    ({"lengths": [2, 2], "mask": np.ones((2, 4), bool)}, ValueError, r"give a mask or lengths, not both")])
@pytest.mark.parametrize("make", range(4))
def test_bad_masks_and_lengths(kwargs, error, message, make):
    layer = _recurrent_layers()[make]
    with pytest.raises(error, match=r"layer 'r' .*" + message):
        layer.forward(X, **kwargs)


def test_integer_and_float_masks_of_zeros_and_ones_equal_bool_masks():
    x = np.random.default_rng(0).normal(size=(2, 4, 3))
    mask = np.array([[1, 1, 0, 0], [1, 1, 1, 0]], dtype=bool)
    layer = L.GRU(3, return_sequences=True, seed=0)
    ref = layer.forward(x, mask=mask)
    np.testing.assert_array_equal(layer.forward(x, mask=mask.astype(np.int8)), ref)
    np.testing.assert_array_equal(layer.forward(x, mask=mask.astype(np.float32)), ref)
    np.testing.assert_array_equal(layer.forward(x, lengths=np.array([2, 3], dtype=np.uint8)), ref)
    np.testing.assert_array_equal(layer.forward(x, lengths=[2, 3]), ref)


def test_pooling_and_attention_masks():
    pool = SequencePooling("mean", name="p")
    y = np.ones((2, 3, 4))
    with pytest.raises(ShapeError, match=r"layer 'p' .*mask must have shape \(batch, time\) = \(2, 3\), got \(3, 2\)"):
        pool.forward(y, mask=np.ones((3, 2), bool))
    with pytest.raises(ValueError, match=r"layer 'p' .*a float64 mask must hold only 0 and 1"):
        pool.forward(y, mask=np.full((2, 3), 0.3))
    with pytest.raises(TypeError, match=r"layer 'p' .*input must hold .*complex"):
        pool.forward(y.astype(complex))
    attn = L.LuongAttention(name="a")
    keys = np.ones((2, 3, 4))
    with pytest.raises(TypeError, match=r"layer 'a' .*keys must hold floating-point numbers, got dtype int64"):
        attn.forward(np.ones((2, 4)), keys.astype(int))
    with pytest.raises(TypeError, match=r"layer 'a' .*query must hold floating-point numbers, got dtype complex"):
        attn.forward(np.ones((2, 4), dtype=complex), keys)
    with pytest.raises(TypeError, match=r"layer 'a' .*mask must hold .*got dtype <U1"):
        attn.forward(np.ones((2, 4)), keys, mask=np.full((2, 3), "x"))


def test_configs_still_round_trip():
    """Validation must accept what get_config writes (from_config rebuilds every layer)."""
    for layer in [L.LSTM(3, return_sequences=True, seed=4), L.GRU(2, reset_after=False),
                  L.SimpleRNN(2, activation="relu"), L.Dense(3, activation="softmax"),
                  L.Embedding(7, 2, mask_zero=True), L.Dropout(0.3, noise_shape=(None, 1, None)),
                  L.Bidirectional(L.LSTM(2, seed=1), merge_mode=None), L.LuongAttention("general"),
                  L.BahdanauAttention(4), L.Input((None, 3)), RecurrentStack(3, 2, "gru", True, 0.1)]:
        config = layer.get_config()
        rebuilt = type(layer).from_config({**config, "name": "rebuilt"}).get_config()
        assert {**rebuilt, "name": config["name"]} == config
