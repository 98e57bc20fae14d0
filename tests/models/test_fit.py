"""Keras-style compile/fit/evaluate/predict (train/fit.py) on the one training loop."""
from __future__ import annotations

import numpy as np
import pytest

import rnnlab as rl
from gradcheck import numerical_grad, rel_error
from rnnlab import layers as L
from rnnlab.callbacks import Callback, EarlyStopping, ModelCheckpoint
from rnnlab.train.fit import ArrayTask, fused_activation
from rnnlab.train.keras_losses import (MAE, ProbabilityBCE, ProbabilityCrossEntropy, SoftmaxSoftCrossEntropy,
                                       final_activation_layer)


def notes_model(seed=0):
    return rl.Sequential([L.Input((20, 6)), L.SimpleRNN(16, return_sequences=True, seed=seed),
                          L.SimpleRNN(32, seed=seed + 1), L.Flatten(), L.Dense(1, seed=seed + 2)])


def regression_data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 20, 6)).astype("float32")
    w = rng.normal(size=6)
    y = (x[:, -5:, :] @ w).mean(axis=1)[:, None] + 0.5 * x[:, :, 0].mean(axis=1, keepdims=True)
    return x, y.astype("float32")


def sentiment_data(n=300, T=12, vocab=30, seed=0):
    """Padded id sequences (0 = padding): positive reviews hold words 2-4, negative ones 5-7,
    both among neutral words 8.."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, T), dtype=np.int64)
    y = rng.integers(0, 2, size=n)
    for i in range(n):
        length = rng.integers(4, T + 1)
        words = rng.integers(8, vocab, size=length)
        cue = rng.integers(2, 5, size=2) if y[i] else rng.integers(5, 8, size=2)
        words[rng.choice(length, size=2, replace=False)] = cue
        x[i, :length] = words
    return x, y.astype("float32")


# ---- the notes' model and a classifier train ---------------------------------------------------


def test_notes_regression_model_trains_well_below_the_mean_baseline():
    x, y = regression_data()
    model = notes_model()
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, epochs=15, batch_size=32, validation_split=0.2, verbose=0)
    baseline = float(np.mean((y[320:] - y[:320].mean()) ** 2))   # predicting the training mean
    assert history.history["val_loss"][-1] < 0.3 * baseline
    assert history.history["loss"][-1] < 0.3 * history.history["loss"][0]
    assert model.evaluate(x[320:], y[320:]) == pytest.approx(history.history["val_loss"][-1], rel=1e-6)


def test_sentiment_classifier_embedding_lstm_sigmoid_beats_chance():
    x, y = sentiment_data()
    rl.initializers.seed(0)
    model = rl.Sequential([L.Embedding(30, 16, mask_zero=True, seed=0), L.LSTM(16, seed=1),
                           L.Dense(1, activation="sigmoid", seed=2)])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(x[:240], y[:240], epochs=12, batch_size=16, validation_data=(x[240:], y[240:]),
                        verbose=0)
    assert history.history["val_accuracy"][-1] > 0.8      # chance: 0.5
    probs = model.predict(x[240:])
    assert probs.shape == (60, 1) and ((probs > 0) & (probs < 1)).all()   # probabilities, not logits
    assert model.layers[-1].activation == "sigmoid"                          # the fusion is undone


def test_softmax_with_sparse_categorical_crossentropy_trains():
    x, y = sentiment_data(seed=1)
    model = rl.Sequential([L.Embedding(30, 16, mask_zero=True, seed=0), L.GRU(16, seed=1),
                           L.Dense(2, activation="softmax", seed=2)])
    model.compile(optimizer=rl.optim.Adam(lr=3e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y.astype(int), epochs=8, batch_size=16, validation_split=0.2, verbose=0)
    assert history.history["val_accuracy"][-1] > 0.8
    assert np.allclose(model.predict(x[:5]).sum(axis=1), 1.0, atol=1e-5)


# ---- probabilities and logits: the fused loss is the gradient of Keras's loss -----------------


@pytest.mark.parametrize("loss,units,activation", [("binary_crossentropy", 1, "sigmoid"),
                                                   ("sparse_categorical_crossentropy", 3, "softmax"),
                                                   ("categorical_crossentropy", 3, "softmax")])
def test_fused_gradients_equal_numerical_gradients_of_the_probability_loss(float64, loss, units, activation):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 4, 3))
    if loss == "binary_crossentropy":
        y = rng.integers(0, 2, size=(5, 1)).astype(float)
    elif loss == "sparse_categorical_crossentropy":
        y = rng.integers(0, 3, size=5)
    else:
        y = rng.dirichlet(np.ones(3), size=5)               # soft targets
    model = rl.Sequential([L.Input((4, 3)), L.LSTM(6, seed=0), L.Dense(units, activation=activation, seed=1)])
    model.compile(optimizer="sgd", loss=loss)
    assert model._compiled.fused is model.layers[-1]
    task = ArrayTask(model, x, y, batch_size=5, shuffle=False)
    value, count = task.train_step((task.x, task.y))
    analytic = [g.copy() for g in model.grads]

    # Keras's loss on the unfused model's probabilities (eps clipping never reached here)
    reference = ProbabilityBCE() if units == 1 else ProbabilityCrossEntropy(sparse=loss.startswith("sparse"))

    def keras_loss():
        return reference.forward(model.forward(task.x), y.reshape(5, -1) if units == 1 else y)

    assert value == pytest.approx(keras_loss(), rel=1e-10) and count == 5
    for p, g in zip(model.params, analytic):
        assert rel_error(g, numerical_grad(keras_loss, p)) < 1e-6


@pytest.mark.parametrize("make", [ProbabilityBCE, lambda: ProbabilityCrossEntropy(True),
                                  lambda: ProbabilityCrossEntropy(False), SoftmaxSoftCrossEntropy, MAE])
def test_probability_losses_gradient_check(float64, make):
    rng = np.random.default_rng(1)
    loss = make()
    mask = np.array([[True, True, False], [True, False, True]])
    if isinstance(loss, ProbabilityBCE):
        out, y = rng.uniform(0.1, 0.9, size=(2, 3, 2)), rng.integers(0, 2, size=(2, 3, 2)).astype(float)
    elif isinstance(loss, ProbabilityCrossEntropy):
        out = rng.uniform(0.1, 1.0, size=(2, 3, 4))          # unnormalised: Keras renormalises
        y = rng.integers(0, 4, size=(2, 3)) if loss.sparse else rng.dirichlet(np.ones(4), size=(2, 3))
    elif isinstance(loss, SoftmaxSoftCrossEntropy):
        out, y = rng.normal(size=(2, 3, 4)), rng.dirichlet(np.ones(4), size=(2, 3))
    else:
        out, y = rng.normal(size=(2, 3, 2)), rng.normal(size=(2, 3, 2))
    loss.forward(out, y, mask)
    analytic = loss.backward()
    numeric = numerical_grad(lambda: loss.forward(out, y, mask), out)
    assert rel_error(analytic, numeric) < 1e-6
    assert loss.count == (4 * 2 if isinstance(loss, (ProbabilityBCE, MAE)) else 4)


def test_probability_losses_match_keras_formulas_and_clip(float64):
    p = np.array([[0.2], [1.0], [0.0]])
    y = np.array([[1.0], [0.0], [0.0]])
    eps = 1e-7
    pc = np.clip(p, eps, 1 - eps)
    expected = np.mean(-(y * np.log(pc) + (1 - y) * np.log(1 - pc)))
    loss = ProbabilityBCE()
    assert loss.forward(p, y) == pytest.approx(expected, rel=1e-12)
    assert loss.backward()[1:].tolist() == [[0.0], [0.0]]    # clipped: no gradient, as in Keras
    probs = np.array([[0.2, 0.3, 0.5], [0.7, 0.2, 0.1]])
    ce = ProbabilityCrossEntropy(sparse=True)
    assert ce.forward(probs, np.array([2, 0])) == pytest.approx(-(np.log(0.5) + np.log(0.7)) / 2, rel=1e-12)


def test_saturated_sigmoid_trains_through_the_fused_loss(float64):
    """A confidently wrong output (z = 40, p == 1.0 exactly) still has its full loss and gradient."""
    model = rl.Sequential([L.Input((2,)), L.Dense(1, activation="sigmoid", seed=0)])
    model.layers[0].set_weights([np.array([[20.0], [20.0]]), np.zeros(1)])
    model.compile(optimizer="sgd", loss="binary_crossentropy")
    x, y = np.ones((1, 2)), np.zeros((1, 1))
    assert model.predict(x)[0, 0] == 1.0
    assert model.evaluate(x, y) == pytest.approx(40.0, rel=1e-9)      # log(1 + e^40)
    task = ArrayTask(model, x, y, batch_size=1)
    task.train_step((task.x, task.y))
    np.testing.assert_allclose(model.grads[0], [[1.0], [1.0]], rtol=1e-12)  # (sigmoid(40) - 0) x


def test_fusion_only_where_the_last_layer_has_the_matching_activation():
    m = rl.Sequential([L.Input((3,)), L.Dense(2), L.Activation("softmax")])
    assert final_activation_layer(m, "softmax") is m.layers[-1]
    assert final_activation_layer(m, "sigmoid") is None
    m.compile(loss="binary_crossentropy")                      # softmax + BCE: on probabilities
    assert m._compiled.fused is None and isinstance(m._compiled.loss, ProbabilityBCE)
    with fused_activation(m._compiled):
        assert m.layers[-1].activation == "softmax"


# ---- fit's bookkeeping -------------------------------------------------------------------------


def test_history_keys_are_kerass_and_one_value_per_epoch():
    x, y = sentiment_data(n=40)
    model = rl.Sequential([L.Embedding(30, 4, mask_zero=True, seed=0), L.SimpleRNN(4, seed=1),
                           L.Dense(1, activation="sigmoid", seed=2)])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy", "mse"])
    history = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0)
    assert list(history.history) == ["loss", "accuracy", "mse", "val_loss", "val_accuracy", "val_mse"]
    assert all(len(v) == 3 for v in history.history.values())
    assert history.epoch == [0, 1, 2] and model.history is history
    loss, acc, mse = model.evaluate(x[30:], y[30:])
    assert [loss, acc, mse] == pytest.approx([history.history[k][-1] for k in ("val_loss", "val_accuracy",
                                                                                "val_mse")], rel=1e-6)
    history = model.fit(x, y, epochs=2, verbose=0)
    assert list(history.history) == ["loss", "accuracy", "mse"]


def test_validation_split_holds_out_the_last_fraction_like_keras():
    x, y = regression_data(n=40)
    seen = []

    class Rows(Callback):
        def on_batch_end(self, trainer, epoch, batch, loss):
            seen.append(batch)

    model = notes_model()
    model.compile(optimizer="adam", loss="mse")
    history = model.fit(x, y, epochs=1, batch_size=10, validation_split=0.25, verbose=0, callbacks=[Rows()])
    assert seen == [1, 2, 3]                                     # 30 training rows in batches of 10
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(x[30:], y[30:]), rel=1e-6)
    assert history.history["val_loss"][0] != pytest.approx(model.evaluate(x[:10], y[:10]), rel=1e-3)


def test_early_stopping_stops_and_restores_the_best_weights():
    x, y = regression_data(n=64)
    weights = []

    class Keep(Callback):
        def on_epoch_end(self, trainer, epoch, row):
            weights.append(trainer.task.model.get_weights())

    model = notes_model()
    model.compile(optimizer=rl.optim.Adam(lr=1e-2), loss="mse")
    # validation targets the opposite of the training ones: val_loss gets worse after a first fit
    stop = EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(x, y, epochs=30, batch_size=16, validation_data=(x, -y), verbose=0,
                        callbacks=[Keep(), stop])
    val = history.history["val_loss"]
    best = int(np.argmin(val))
    assert len(val) == best + 3 < 30                             # stopped patience epochs after the best
    assert stop.stopped_epoch == len(val) and stop.best_epoch == best + 1 and history.stopped == "callback"
    for now, then in zip(model.get_weights(), weights[best]):
        np.testing.assert_array_equal(now, then)
    assert model.evaluate(x, -y) == pytest.approx(val[best], rel=1e-6)


def test_model_checkpoint_writes_loadable_files(tmp_path):
    x, y = regression_data(n=48)
    model = notes_model()
    model.compile(optimizer="adam", loss="mse")
    every = ModelCheckpoint(tmp_path / "m-{epoch:02d}.npz", save_best_only=False)
    best = ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss", save_best_only=True)
    history = model.fit(x, y, epochs=3, batch_size=16, validation_split=0.25, verbose=0, callbacks=[every, best])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.npz", "m-01.npz", "m-02.npz", "m-03.npz"]
    np.testing.assert_allclose(rl.load(tmp_path / "m-03.npz").predict(x), model.predict(x), rtol=1e-6)
    ckpt = rl.checkpoint.load_checkpoint(tmp_path / "best.npz")
    assert ckpt.state["epoch"] == int(np.argmin(history.history["val_loss"])) + 1


def test_monitoring_a_missing_key_names_the_keys_there_are():
    x, y = regression_data(n=16)
    model = notes_model()
    model.compile(loss="mse")
    with pytest.raises(KeyError, match="val_loss.*validation_split.*loss"):
        model.fit(x, y, epochs=2, verbose=0, callbacks=[EarlyStopping()])


def test_evaluate_and_predict_in_batches_equal_one_full_batch_forward(float64):
    x, y = regression_data(n=23)
    model = notes_model()
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    model.train()
    full = model.eval().forward(rl.backend.asarray(x))
    model.train()
    np.testing.assert_allclose(model.predict(x, batch_size=5), full, rtol=1e-12)
    assert model.training                                           # predict leaves the mode as it was
    loss, mae = model.evaluate(x, y, batch_size=4)
    assert loss == pytest.approx(np.mean((full - y) ** 2), rel=1e-12)
    assert mae == pytest.approx(np.mean(np.abs(full - y)), rel=1e-12)


def test_padded_positions_do_not_count_in_a_tagger_loss(float64):
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 10, size=(4, 6))
    ids[0, 4:] = ids[2, 3:] = 0
    tags = rng.integers(0, 3, size=(4, 6))
    model = rl.Sequential([L.Embedding(10, 4, mask_zero=True, seed=0), L.LSTM(5, return_sequences=True, seed=1),
                           L.Dense(3, activation="softmax", seed=2)])
    model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    probs = model.predict(ids)
    real = ids != 0
    nll = -np.log(np.take_along_axis(probs, tags[..., None], axis=-1)[..., 0])
    loss, acc = model.evaluate(ids, tags, batch_size=4)
    assert loss == pytest.approx(nll[real].mean(), rel=1e-9)
    assert acc == pytest.approx((probs.argmax(-1) == tags)[real].mean())


def test_a_custom_model_trains_with_a_loss_object():
    x, y = sentiment_data(n=120)
    model = rl.models.SequenceClassifier(2, vocab_size=30, emb=8, hidden=8, seed=0)   # logits out
    model.compile(optimizer=rl.optim.Adam(lr=1e-2), loss=rl.losses.SoftmaxCrossEntropy(), metrics=["accuracy"])
    history = model.fit(x, y.astype(int), epochs=6, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.6 * history.history["loss"][0]


def test_clipnorm_clips_the_global_gradient_norm():
    x, y = regression_data(n=8)
    model = notes_model()
    model.compile(optimizer=rl.optim.SGD(lr=1.0), loss="mse")
    before = model.get_weights()
    model.fit(x, y, epochs=1, batch_size=8, clipnorm=1e-3, verbose=0)
    moved = np.sqrt(sum(((a - b) ** 2).sum() for a, b in zip(model.get_weights(), before)))
    assert moved == pytest.approx(1e-3, rel=1e-2)                 # one SGD step of norm lr * clipnorm


def test_verbose_shows_progress_on_stderr_and_zero_silences(capsys):
    x, y = regression_data(n=16)
    model = notes_model()
    model.compile(loss="mse")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    assert capsys.readouterr().err == ""
    model.fit(x, y, epochs=1, batch_size=8, verbose=1)
    err = capsys.readouterr().err
    assert "epoch 1/1" in err and "loss: " in err
    assert "\r" not in err and "it/s" not in err     # stderr is no terminal here: no bar in the log, lines only


# ---- errors --------------------------------------------------------------------------------------


def test_fit_before_compile_is_a_clear_error():
    model = notes_model()
    with pytest.raises(RuntimeError, match=r"model.compile\(optimizer=..., loss=...\) before model.fit"):
        model.fit(np.zeros((2, 20, 6)), np.zeros((2, 1)))
    with pytest.raises(RuntimeError, match="before model.evaluate"):
        model.evaluate(np.zeros((2, 20, 6)), np.zeros((2, 1)))


@pytest.mark.parametrize("kwargs,match", [
    ({"optimizer": "rmsprop", "loss": "mse"}, "optimizer='rmsprop'.*adam"),
    ({"optimizer": 3, "loss": "mse"}, "optimizer=.*int"),
    ({"loss": "hinge"}, "loss='hinge'.*binary_crossentropy"),
    ({"loss": None}, "loss=None"),
    ({"loss": "mse", "metrics": ["auc"]}, "'auc'.*accuracy"),
    ({"loss": "mse", "metrics": "accuracy"}, "metrics='accuracy'.*list"),
])
def test_compile_errors_name_the_bad_argument(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        notes_model().compile(**kwargs)


@pytest.mark.parametrize("kwargs,match", [
    ({"validation_split": 1.0}, "validation_split=1.0"),
    ({"batch_size": 0}, "batch_size=0"),
    ({"validation_data": (np.zeros((2, 20, 6)),)}, "validation_data"),
])
def test_fit_argument_errors(kwargs, match):
    model = notes_model()
    model.compile(loss="mse")
    with pytest.raises(ValueError, match=match):
        model.fit(np.zeros((4, 20, 6)), np.zeros((4, 1)), verbose=0, **kwargs)
    with pytest.raises(ValueError, match="x has 4 samples but y has 3"):
        model.fit(np.zeros((4, 20, 6)), np.zeros((3, 1)), verbose=0)


def test_model_methods_run_what_train_registers_and_models_import_no_train(monkeypatch):
    from rnnlab.models import base
    from rnnlab.train import fit

    assert base.keras_training("fit") is fit.fit_model          # registered by importing rnnlab
    with pytest.raises(ValueError, match="no Model method train"):
        base.register_keras_training(train=fit.fit_model)
    monkeypatch.setattr(base, "_keras_training", {})
    with pytest.raises(RuntimeError, match="Model.compile runs on rnnlab's training loop"):
        rl.Sequential([L.Input((3,)), L.Dense(1)]).compile(loss="mse")
