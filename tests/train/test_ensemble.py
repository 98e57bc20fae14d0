"""Ensembles of finished runs (train/ensemble.py, search.StepEnsemble, rnnlab ensemble): the
ensemble's figures are those of the averaged probabilities, computed here another way; runs
that cannot be averaged are refused with the run and the setting named."""
import json

import numpy as np
import pytest

from rnnlab import backend
from rnnlab.cli import main
from rnnlab.data.padding import pad_chars, pad_ids
from rnnlab.models.captioner import Captioner, CaptionerEnsemble
from rnnlab.search import StepEnsemble, decode
from rnnlab.train.caption import CaptionConfig, train_caption
from rnnlab.train.classify import ClassifyConfig, classify, train_classify
from rnnlab.train.ensemble import evaluate_ensemble, report
from rnnlab.train.supervised import host_softmax, load_run
from rnnlab.train.tag import TagConfig, TagTask, tag_probabilities, tag_sentences, train_tag
from tasks_toy import STEMS, write_conllu, write_feature_captions, write_sentiment


@pytest.fixture(scope="module")
def sentiment_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ensemble_classify")
    for name, n, seed in (("train.tsv", 200, 0), ("valid.tsv", 40, 1), ("test.tsv", 80, 2)):
        write_sentiment(folder / name, n, seed)
    runs = []
    for seed in (0, 1, 2):
        config = ClassifyConfig(tsv=str(folder / "train.tsv"), valid=str(folder / "valid.tsv"),
                                test=str(folder / "test.tsv"), emb=8, hidden=8, epochs=2, batch=16, lr=1e-2,
                                dropout=0.0, progress=False, seed=seed)
        runs.append(train_classify(config, folder / f"run{seed}"))
    return folder, runs


def test_classify_ensemble_is_the_argmax_of_the_mean_probability(sentiment_runs):
    folder, runs = sentiment_runs
    dirs = [folder / f"run{seed}" for seed in (0, 1, 2)]
    result = evaluate_ensemble(dirs)
    lines = (folder / "test.tsv").read_text().splitlines()[1:]
    texts, gold = [line.split("\t")[0] for line in lines], [line.split("\t")[1] for line in lines]
    # the oracle: each run's probabilities through `classify` (one padded batch of all texts)
    mean = np.mean([[list(r["probabilities"].values()) for r in classify(d, texts=texts)] for d in dirs], axis=0)
    labels = list(classify(dirs[0], texts=texts[:1])[0]["probabilities"])
    expected = np.mean([labels[k] == g for k, g in zip(mean.argmax(axis=1), gold)])
    assert result["accuracy"] == pytest.approx(expected) and result["n"] == 80 and result["labels"] == labels
    assert np.asarray(result["confusion"]).sum() == 80
    for member, run in zip(result["members"], runs):   # each member as its own run reported it
        assert member["accuracy"] == pytest.approx(run["accuracy"])
        assert member["macro_f1"] == pytest.approx(run["macro_f1"])
    # the three members disagree somewhere, so the ensemble is not just one of them
    assert len({tuple(np.asarray(m["confusion"]).ravel()) for m in result["members"]}) > 1
    assert "ensemble of 3 (classify, test, 80 examples)" in report(result)
    assert evaluate_ensemble(dirs[:1], split="valid")["accuracy"] == pytest.approx(runs[0]["valid_accuracy"])


def test_runs_that_cannot_be_averaged_are_refused(sentiment_runs, tmp_path, capsys):
    folder, _ = sentiment_runs
    with pytest.raises(ValueError, match="given twice"):
        evaluate_ensemble([folder / "run0", folder / "run0"])
    other = ClassifyConfig(tsv=str(folder / "train.tsv"), valid=str(folder / "valid.tsv"),
                           test=str(folder / "test.tsv"), emb=8, hidden=8, epochs=1, batch=16, lowercase=True,
                           progress=False)
    train_classify(other, tmp_path / "lower")
    with pytest.raises(ValueError, match=r"lower trained on lowercase=True.*share their data"):
        evaluate_ensemble([folder / "run0", tmp_path / "lower"])
    with pytest.raises(ValueError, match="split must be one of valid, test"):
        evaluate_ensemble([folder / "run0"], split="train")
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    assert main(["ensemble", str(folder / "run0"), str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"rnnlab ensemble: error: {tmp_path / 'empty'} is not a run directory (no config.json)"]
    # the CLI: one JSON object on the last line, the members' and the ensemble's figures
    assert main(["ensemble", str(folder / "run0"), str(folder / "run1"), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["task"] == "classify" and len(result["members"]) == 2 and 0 <= result["accuracy"] <= 1


def test_tag_ensemble_is_the_argmax_of_each_words_mean_probability(tmp_path, capsys):
    write_conllu(tmp_path / "train.conllu", 120, 0, STEMS[:18])
    write_conllu(tmp_path / "dev.conllu", 20, 1, STEMS[:18])
    write_conllu(tmp_path / "test.conllu", 30, 2, STEMS[18:])
    dirs = [tmp_path / f"tag{seed}" for seed in (0, 1)]
    runs = [
        train_tag(TagConfig(conllu=str(tmp_path / "train.conllu"), valid=str(tmp_path / "dev.conllu"),
                            test=str(tmp_path / "test.conllu"), emb=8, char_emb=6, char_hidden=8, hidden=8, epochs=1,
                            batch=16, lr=1e-2, dropout=0.0, min_freq=1, progress=False, seed=seed), run_dir)
        for seed, run_dir in zip((0, 1), dirs)]
    result = evaluate_ensemble(dirs)
    # the oracle: every test sentence alone (no padding), each model's softmax, averaged
    task = TagTask(TagConfig.from_run_config(load_run(dirs[0])[0]))
    test = task.load_data().test
    models = [load_run(d)[1] for d in dirs]
    correct = total = 0
    for words, chars, tags in zip(test.words, test.chars, test.tags):
        ids, mask = pad_ids([words])
        logits = [backend.to_numpy(m.forward(ids, pad_chars([chars]), mask))[0].astype(np.float64) for m in models]
        mean = np.mean([np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True) for z in logits], axis=0)
        correct += int((mean.argmax(axis=-1) == np.asarray(tags)).sum())
        total += len(tags)
    assert result["words"] == total and result["accuracy"] == pytest.approx(correct / total)
    assert f"ensemble of 2 (tag, test, 30 sentences, {total} words)" in report(result)
    assert [m["accuracy"] for m in result["members"]] == pytest.approx([run["accuracy"] for run in runs])
    assert [m["unseen_accuracy"] for m in result["members"]] == pytest.approx([run["unseen_accuracy"] for run in runs])
    # rnnlab predict with both runs: the tags of the mean probabilities, through the CLI too
    sentence = "the rotion mildly passed"
    (names, [(_, first)]), (_, [(_, second)]) = (tag_probabilities(d, [sentence]) for d in dirs)
    expected = [names[int(t)] for t in ((first + second) / 2).argmax(axis=-1)]
    assert main(["predict", *map(str, dirs), sentence, "--json"]) == 0
    (predicted,) = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"]
    assert predicted == {"words": sentence.split(), "tags": expected}
    assert tag_sentences(dirs[0], [sentence])[0]["tags"] == [names[int(t)] for t in first.argmax(axis=-1)]


def test_step_ensemble_averages_probabilities_and_one_member_is_the_model(float64):
    rng = np.random.default_rng(0)
    models = [Captioner(6, 9, emb=4, hidden=5, feed_features=True, feed_size=3, seed=s) for s in (0, 1)]
    for m in models:
        m.eval()
    features = rng.normal(size=(4, 6))
    tokens = np.array([2, 5, 7, 1])
    ensemble = StepEnsemble(models)
    logp, _, attention = ensemble.decode_step(ensemble.init_decode(features), tokens)
    members = [m.decode_step(m.init_decode(features), tokens)[0] for m in models]
    np.testing.assert_allclose(logp, np.log((np.exp(members[0]) + np.exp(members[1])) / 2), rtol=1e-13)
    np.testing.assert_allclose(np.exp(logp).sum(axis=1), 1.0, rtol=1e-13)
    assert attention is None
    # an ensemble of one decodes exactly as its member, greedy and beam
    for beam in (1, 3):
        alone = models[0].caption(features, max_len=6, beam_width=beam)
        single = CaptionerEnsemble(models[:1]).caption(features, max_len=6, beam_width=beam)
        assert single.tokens == alone.tokens
        np.testing.assert_allclose(single.scores, alone.scores, rtol=1e-12)
    assert decode(ensemble, features, None, 6, 2, 3, beam_width=2).tokens is not None
    with pytest.raises(ValueError, match="members must agree"):
        CaptionerEnsemble([models[0], Captioner(6, 10, emb=4, hidden=5)])


@pytest.mark.slow
def test_caption_ensemble_reports_each_member_as_its_run(tmp_path):
    X, captions = write_feature_captions(tmp_path, 300, 0)
    dirs = [tmp_path / f"cap{seed}" for seed in (0, 1)]
    runs = [train_caption(CaptionConfig(features=str(X), captions=str(captions), hidden=16, emb=6, epochs=3,
                                        batch=16, lr=1e-2, beam=2, progress=False, seed=seed), d)
            for seed, d in zip((0, 1), dirs)]
    result = evaluate_ensemble(dirs)
    assert result["task"] == "caption" and result["n"] == 30 and result["beam"] == 2
    for member, run in zip(result["members"], runs):
        assert member["exact_match"] == pytest.approx(run["exact_match"])
        assert member["beam_exact_match"] == pytest.approx(run["beam_exact_match"])
    assert 0 <= result["exact_match"] <= 1 and 0 <= result["token_accuracy"] <= 1
    assert "beam" not in evaluate_ensemble(dirs, beam=1)


def test_predict_averages_the_runs_given_before_the_inputs(sentiment_runs, capsys):
    folder, _ = sentiment_runs
    dirs = [str(folder / f"run{seed}") for seed in (0, 1)]
    texts = ["the film was great", "a dull plot"]
    alone = [classify(d, texts=texts) for d in dirs]
    capsys.readouterr()
    assert main(["predict", *dirs, *texts, "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["predictions"]
    for k, prediction in enumerate(out):
        assert prediction["input"] == texts[k]
        for label, p in prediction["probabilities"].items():
            assert p == pytest.approx((alone[0][k]["probabilities"][label] + alone[1][k]["probabilities"][label]) / 2)
        assert prediction["label"] == max(prediction["probabilities"], key=prediction["probabilities"].get)
    assert main(["predict", *dirs]) == 2
    assert "give the inputs to predict after the run directories" in capsys.readouterr().err


@pytest.mark.slow
def test_seq2seq_ensemble_decodes_as_one_model(tmp_path):
    from rnnlab.train.seq2seq import Seq2SeqConfig, evaluate_run, train_seq2seq

    dirs = [tmp_path / f"dates{seed}" for seed in (0, 1)]
    for seed, run_dir in zip((0, 1), dirs):
        train_seq2seq(Seq2SeqConfig(generated="dates", n=600, attention="luong", hidden=32, emb=16, epochs=2,
                                    batch=32, lr=1e-2, seed=seed, progress=False), run_dir)
    result = evaluate_ensemble(dirs)
    for member, run_dir in zip(result["members"], dirs):     # each member as `rnnlab eval` reports it
        alone = evaluate_run(run_dir)
        assert member["exact_match"] == pytest.approx(alone["exact_match"])
        assert member["bleu"] == pytest.approx(alone["bleu"])
    assert result["task"] == "seq2seq" and result["n"] == 60 and result["beam"] == 1
    # an ensemble of one run decodes exactly as the run (greedy and beam)
    for beam in (1, 3):
        single = evaluate_ensemble(dirs[:1], beam=beam)
        assert single["exact_match"] == pytest.approx(evaluate_run(dirs[0], beam=beam)["exact_match"])
    assert "BLEU" in report(result)
    other = tmp_path / "other"
    train_seq2seq(Seq2SeqConfig(generated="dates", n=500, hidden=8, emb=8, epochs=1, progress=False), other)
    with pytest.raises(ValueError, match=r"other trained on n=500.*share their data"):
        evaluate_ensemble([dirs[0], other])


def test_host_softmax_is_exp_over_its_sum_even_for_large_logits():
    logits = np.array([[1.0, 2.0, 3.0], [1000.0, 1000.0, -1000.0]])
    expected = np.array([np.exp([1.0, 2.0, 3.0]) / np.exp([1.0, 2.0, 3.0]).sum(), [0.5, 0.5, 0.0]])
    np.testing.assert_allclose(host_softmax(logits), expected, rtol=1e-13, atol=1e-300)
