"""ClassifyTask on the loop: learns well past the majority baseline, resumes exactly, predicts."""
import os
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data.padding import pad_vectors
from rnnlab.data.timeseries import load_ts_dataset, read_ts
from rnnlab.train.classify import ClassifyConfig, classify, train_classify
from rnnlab.train.supervised import load_run
from tasks_toy import write_sentiment

DATA = os.environ.get("RNNLAB_DATA")


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sentiment")
    for name, n, seed in (("train.tsv", 300, 0), ("valid.tsv", 60, 1), ("test.tsv", 100, 2)):
        write_sentiment(folder / name, n, seed)
    return folder


def config(toy, **kw):
    base = dict(tsv=str(toy / "train.tsv"), valid=str(toy / "valid.tsv"), test=str(toy / "test.tsv"), emb=16,
                hidden=16, epochs=4, batch=16, lr=1e-2, dropout=0.0, progress=False)
    return ClassifyConfig(**{**base, **kw})


def test_text_classifier_beats_majority_and_writes_report(toy, tmp_path):
    result = train_classify(config(toy), tmp_path / "run")
    m = result.metrics
    assert m["majority_baseline"] == pytest.approx(np.mean([line.endswith("pos") for line in
                                                            (toy / "test.tsv").read_text().split("\n")[1:-1]]))
    assert m["accuracy"] >= m["majority_baseline"] + 0.25
    assert np.asarray(m["confusion"]).sum() == m["test_n"] == 100 and m["labels"] == ["neg", "pos"]
    assert 0 < m["macro_f1"] <= 1
    assert (tmp_path / "run" / "confusion.png").exists() and (tmp_path / "run" / "curves.png").exists()
    # predict: the label with the larger probability, probabilities summing to 1
    out = classify(tmp_path / "run", texts=["the film was great", "the plot was awful"])
    assert [r["label"] for r in out] == ["pos", "neg"]
    assert sum(out[0]["probabilities"].values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="series"):
        classify(tmp_path / "run", series=[np.zeros((3, 2))])


@pytest.mark.slow
def test_resume_continues_exactly(toy, tmp_path):
    straight = train_classify(config(toy, epochs=2), tmp_path / "a")
    train_classify(config(toy, epochs=1), tmp_path / "b")
    resumed = train_classify(None, tmp_path / "b", resume=True, overrides={"epochs": 2})
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    assert resumed["accuracy"] == straight["accuracy"]
    # --monitor may name exactly the validation figures the task reports
    assert set(ClassifyConfig.MONITORS) == {key for key in straight.history[-1] if key.startswith("valid_")}
    with pytest.raises(ValueError, match="keeps its config"):
        train_classify(None, tmp_path / "b", resume=True, overrides={"lr": 0.5})


@pytest.mark.slow
def test_lr_decay_schedule_survives_a_resume(toy, tmp_path):
    # epoch e trains at lr * decay ** max(e - decay_start, 0); a resume restores the schedule
    straight = train_classify(config(toy, epochs=4, lr_decay=0.5, decay_start=2), tmp_path / "a")
    assert [r["lr"] for r in straight.history] == pytest.approx([1e-2, 1e-2, 5e-3, 2.5e-3])
    train_classify(config(toy, epochs=3, lr_decay=0.5, decay_start=2), tmp_path / "b")
    resumed = train_classify(None, tmp_path / "b", resume=True, overrides={"epochs": 4})
    assert [r["lr"] for r in resumed.history] == [r["lr"] for r in straight.history]
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    constant = train_classify(config(toy, epochs=2), tmp_path / "c")
    assert [r["lr"] for r in constant.history] == [1e-2, 1e-2]
    with pytest.raises(ValueError, match="lr_decay must lie in"):
        train_classify(config(toy, lr_decay=1.5))


def test_exactly_one_data_source(toy):
    with pytest.raises(ValueError, match="exactly one data source"):
        train_classify(config(toy, sst2="sentences"))


@pytest.mark.skipif(not DATA or not os.path.isdir(os.path.join(DATA or "", "timeseries", "JapaneseVowels")),
                    reason="RNNLAB_DATA does not hold timeseries/JapaneseVowels")
def test_japanese_vowels_slice_beats_majority(tmp_path):
    result = train_classify(ClassifyConfig(ts_dataset="JapaneseVowels", hidden=24, epochs=2, batch=16, lr=5e-3,
                                           progress=False), tmp_path / "jv")
    assert result["majority_baseline"] < 0.2 and result["accuracy"] >= result["majority_baseline"] + 0.3
    series = [np.random.default_rng(0).normal(size=(10, 12))]
    (out,) = classify(tmp_path / "jv", series=series)
    assert out["label"] in result["labels"] and len(out["probabilities"]) == 9


@pytest.mark.skipif(not DATA or not os.path.isdir(os.path.join(DATA or "", "timeseries", "JapaneseVowels")),
                    reason="RNNLAB_DATA does not hold timeseries/JapaneseVowels")
@pytest.mark.slow
def test_deltas_double_the_features_and_prediction_appends_them_too(tmp_path):
    result = train_classify(ClassifyConfig(ts_dataset="JapaneseVowels", deltas=True, hidden=24, epochs=2, batch=16,
                                           lr=5e-3, progress=False), tmp_path / "jv")
    assert result["accuracy"] >= result["majority_baseline"] + 0.3
    stored, model = load_run(tmp_path / "jv")
    assert stored["deltas"] and len(stored["mean"]) == 24 and model.input_dim == 24
    data = load_ts_dataset("JapaneseVowels", deltas=True)
    raw = read_ts(Path(DATA, "timeseries", "JapaneseVowels", "JapaneseVowels_TEST.ts")).series[:5]
    outs = classify(tmp_path / "jv", series=raw)                   # 12 raw coefficients in, deltas added
    x, mask = pad_vectors(data.test.inputs[:5])
    expected = model.predict_proba(np.asarray(x, dtype=np.float32), mask)
    assert np.allclose([[o["probabilities"][label] for label in stored["labels"]] for o in outs], expected, atol=1e-6)
    with pytest.raises(ValueError, match="classifies series of 12 features"):   # the raw count, deltas not counted
        classify(tmp_path / "jv", texts=["a sentence"])
    with pytest.raises(ValueError, match="--deltas .* not with sentences"):
        train_classify(ClassifyConfig(tsv="x.tsv", deltas=True, progress=False))


def test_word_dropout_reads_real_words_as_unk_and_refuses_vectors(toy):
    from rnnlab.data.labeled import load_tsv_classification
    from rnnlab.train.classify import ClassifyTask

    data = load_tsv_classification(toy / "train.tsv", toy / "valid.tsv", toy / "test.tsv")
    plain = ClassifyTask(config(toy), data=data).epoch_batches(1)
    dropped = ClassifyTask(config(toy, word_dropout=0.5), data=data).epoch_batches(1)
    unk, changed, real = data.vocab.unk_id, 0, 0
    for a, b in zip(plain, dropped):
        mask = np.asarray(a["mask"]).astype(bool)
        xa, xb = np.asarray(a["x"]), np.asarray(b["x"])
        np.testing.assert_array_equal(xb[~mask], xa[~mask])          # padding kept
        assert (xb[xa != xb] == unk).all() and list(a["rows"]) == list(b["rows"])
        changed, real = changed + int((xa != xb).sum()), real + int(mask.sum())
    assert 0.4 < changed / real < 0.6
    series = ClassifyTask(config(toy, tsv=None, valid=None, test=None, ts_dataset="x", word_dropout=0.5),
                          data=make_series_data())
    with pytest.raises(ValueError, match="word-dropout reads words as <unk>; these are series"):
        series.build_model()


def make_series_data():
    from rnnlab.data.labeled import ClassificationData, ClassSplit

    rng = np.random.default_rng(0)

    def split(n):
        return ClassSplit([rng.normal(size=(5, 3)) for _ in range(n)], np.arange(n) % 2, list(range(1, n + 1)))
    return ClassificationData(split(8), split(4), split(4), ["a", "b"], "series", mean=np.zeros(3), std=np.ones(3))


def test_settings_left_none_follow_the_kind_of_data():
    text = ClassifyConfig(tsv="train.tsv").for_data()
    assert (text.cell, text.hidden, text.batch, text.epochs, text.valid_fraction) == ("lstm", 128, 32, 20, 0.1)
    series = ClassifyConfig(ts="train.ts", ts_test="test.ts").for_data(36)
    # 36 series are 3 batches of 16 an epoch: 500 epochs make the 1,500 updates
    assert (series.cell, series.hidden, series.batch, series.epochs, series.valid_fraction) == ("gru", 128, 16, 500, 0)
    assert ClassifyConfig(ts="a.ts", ts_test="b.ts").for_data(1000).epochs == 24       # 63 batches an epoch
    given = ClassifyConfig(ts="a.ts", ts_test="b.ts", cell="lstm", batch=8, epochs=3).for_data(36)
    assert (given.cell, given.batch, given.epochs) == ("lstm", 8, 3)             # what is given stays
    assert ClassifyConfig(ts="a.ts", ts_test="b.ts", batch=50).for_data(100).epochs == 750   # 2 batches an epoch


def write_series(path, n, seed, length=130):
    """A two-class univariate .ts file: a bump early (class a) or late (class b) in noise."""
    rng = np.random.default_rng(seed)
    lines = ["@problemName Bumps", "@univariate true", "@equalLength true", "@classLabel true a b", "@data"]
    for i in range(n):
        label = "ab"[i % 2]
        x = rng.normal(0, 0.1, length)
        centre = length // 4 if label == "a" else 3 * length // 4
        x[centre - 10:centre + 10] += 3.0
        lines.append(",".join(f"{v:.4f}" for v in x) + f":{label}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_series_defaults_train_on_every_series_and_predict_folds_new_series(tmp_path):
    train, test = write_series(tmp_path / "b_TRAIN.ts", 24, 0), write_series(tmp_path / "b_TEST.ts", 40, 1)
    result = train_classify(ClassifyConfig(ts=str(train), ts_test=str(test), epochs=30, lr=1e-2, progress=False),
                            tmp_path / "run")
    assert result["accuracy"] >= 0.9
    stored, model = load_run(tmp_path / "run")
    # what the run trained with is written down: the kind's settings, the folding (130 frames -> 3 a step)
    assert (stored["cell"], stored["hidden"], stored["batch"], stored["valid_fraction"]) == ("gru", 128, 16, 0.0)
    assert stored["frames_per_step"] == 3 and model.input_dim == 3
    assert result["valid_accuracy"] is None                         # nothing held out
    outs = classify(tmp_path / "run", series=read_ts(test).series[:6])
    data = load_ts_dataset_like(train, test, stored["frames_per_step"])
    x, mask = pad_vectors(data.test.inputs[:6])
    expected = model.predict_proba(np.asarray(x, dtype=np.float32), mask)
    assert np.allclose([[o["probabilities"][k] for k in stored["labels"]] for o in outs], expected, atol=1e-6)
    from rnnlab.train.ensemble import evaluate_ensemble
    with pytest.raises(ValueError, match="holds no valid split"):
        evaluate_ensemble([tmp_path / "run"], split="valid")
    with pytest.raises(ValueError, match="needs a validation split"):
        train_classify(ClassifyConfig(ts=str(train), ts_test=str(test), epochs=1, monitor="valid_accuracy",
                                      progress=False))


def load_ts_dataset_like(train, test, frames_per_step):
    from rnnlab.data.timeseries import load_ts_classification

    return load_ts_classification(train, test, frames_per_step=frames_per_step)
