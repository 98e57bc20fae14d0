"""Language-model training: PTB smoke run, carried state, resume, divergence, time budget."""
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data.corpora import load_ptb
from rnnlab.train import lm as lm_train
from rnnlab.train import loop as train_loop
from rnnlab.checkpoint import load_checkpoint
from rnnlab.train.lm import LMConfig, evaluate, load_run, make_config, sample_lm, train_lm
from rnnlab.train.loop import RunDir, TrainingDiverged


def _need_ptb():
    root = os.environ.get("RNNLAB_DATA")
    if not root or not Path(root, "ptb", "ptb.train.txt").is_file():
        pytest.skip("Penn Treebank not found under $RNNLAB_DATA/ptb (CI sets RNNLAB_DATA to the shared "
                    "data folder; here, export RNNLAB_DATA=/path/to/shared/data)")


@pytest.fixture(scope="module")
def ptb_run(tmp_path_factory):
    """A tiny LSTM trained for two passes over the first 4,000 PTB tokens."""
    _need_ptb()
    run_dir = tmp_path_factory.mktemp("ptb") / "run"
    # the per-token mean loss at lr 1 (a gentle rate for this tiny model; the default SGD
    # scale, the loss summed over the window, is for the full-size models)
    config = make_config(limit=4000, hidden=32, emb=32, bptt=10, batch=8, epochs=2, lr=1.0,
                         decay_start=1, eval_batch=4, seed=0, sum_over_time=False)
    result = train_lm(config, run_dir, progress=False)
    return config, run_dir, result


@pytest.mark.slow
def test_ptb_smoke_perplexity_falls_well_below_the_vocabulary(ptb_run):
    config, run_dir, result = ptb_run
    vocab_size = RunDir(run_dir).read_config()["vocab_size"]
    assert vocab_size > 500
    # an untrained model is near the vocabulary size; one short pass must get far below it
    assert result["perplexity"] < vocab_size / 4 and result["valid_perplexity"] < vocab_size / 4
    assert math.isclose(result["perplexity"], math.exp(result["loss"]))
    assert result["epochs"] == 2 and result["tokens"] > 3900 and "bits_per_char" not in result
    rows = RunDir(run_dir).read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["valid_loss"] < rows[0]["valid_loss"]
    assert [r["lr"] for r in rows] == [1.0, 0.5]  # epoch e trains at lr * decay ** max(e - decay_start, 0)
    for name in ("config.json", "vocab.json", "best.npz", "last.npz", "metrics.jsonl", "curves.png"):
        assert (run_dir / name).is_file(), name
    assert RunDir(run_dir).read_config()["task"] == "lm"


@pytest.mark.slow   # trains on PTB (the module's ptb_run)
def test_sampling_is_deterministic_under_a_seed(ptb_run):
    _, run_dir, _ = ptb_run
    a = sample_lm(run_dir, prime="the company", length=25, temperature=0.9, top_k=50, seed=3)
    assert a == sample_lm(run_dir, prime="the company", length=25, temperature=0.9, top_k=50, seed=3)
    assert a["text"] != sample_lm(run_dir, prime="the company", length=25, temperature=0.9, top_k=50, seed=4)["text"]
    assert a["text"].startswith("the company ")
    assert len(a["text"].split()) >= 2 + 20  # <eos> becomes a line break, not a word


@pytest.mark.slow   # trains on PTB (the module's ptb_run)
def test_carried_state_beats_a_state_reset_per_window(ptb_run):
    config, run_dir, _ = ptb_run
    _, vocab, model = load_run(run_dir)
    valid = load_ptb(limit=config.limit).valid
    carried = evaluate(model, valid, batch=4, bptt=5, carry_state=True)
    reset = evaluate(model, valid, batch=4, bptt=5, carry_state=False)
    assert carried["tokens"] == reset["tokens"]
    assert carried["perplexity"] < reset["perplexity"] * 0.9, (carried, reset)


def _char_config(tmp_path, **overrides):
    text = tmp_path / "abc.txt"
    rng = np.random.default_rng(0)
    words = ["the cat", "a dog", "sat on", "the mat", "and ran", "away"]
    text.write_text("\n".join(" ".join(rng.choice(words, 4)) for _ in range(60)), encoding="utf-8")
    values = dict(text=str(text), level="char", hidden=12, emb=8, bptt=6, batch=3, epochs=2,
                  optimizer="adam", lr=0.01, lr_decay=0.5, decay_start=1, dropout=0.2, eval_batch=2)
    values.update(overrides)
    return make_config(**values)


@pytest.mark.slow
def test_killed_and_resumed_run_ends_exactly_like_an_uninterrupted_one(tmp_path):
    config = _char_config(tmp_path, checkpoint_every=4)
    whole = train_lm(config, tmp_path / "whole", progress=False)

    def kill(epoch, window):
        if epoch == 2 and window == 10:  # mid-epoch, two windows after the checkpoint at window 8
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_lm(config, tmp_path / "killed", progress=False, on_window=kill)
    state = load_checkpoint(tmp_path / "killed" / "last.npz").state
    assert (state["epoch"], state["batch"]) == (2, 8)
    resumed = train_lm(config, tmp_path / "killed", resume=True, progress=False)
    assert resumed["perplexity"] == whole["perplexity"]
    assert resumed["valid_perplexity"] == whole["valid_perplexity"]
    strip = [{k: v for k, v in r.items() if k not in ("wall_s", "tokens_per_s")}
             for r in RunDir(tmp_path / "killed").read_metrics()]
    assert strip == [{k: v for k, v in r.items() if k not in ("wall_s", "tokens_per_s")}
                     for r in RunDir(tmp_path / "whole").read_metrics()]
    # resuming a finished run changes nothing
    again = train_lm(None, tmp_path / "killed", resume=True, progress=False)
    assert again["perplexity"] == whole["perplexity"] and len(RunDir(tmp_path / "killed").read_metrics()) == 2


def test_char_run_reports_bits_per_char(tmp_path):
    result = train_lm(_char_config(tmp_path, epochs=1), tmp_path / "run", progress=False)
    assert math.isclose(result["bits_per_char"], result["loss"] / math.log(2))
    assert "valid_bpc" in RunDir(tmp_path / "run").read_metrics()[0]


def test_nan_loss_stops_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    config = _char_config(tmp_path, epochs=1, checkpoint_every=3)
    original = lm_train.SoftmaxCrossEntropy.forward
    calls = {"n": 0}

    def flaky(self, logits, targets, mask=None):
        calls["n"] += 1
        value = original(self, logits, targets, mask)
        return float("nan") if calls["n"] == 5 else value

    monkeypatch.setattr(lm_train.SoftmaxCrossEntropy, "forward", flaky)
    with pytest.raises(TrainingDiverged, match=r"loss is nan at epoch 1, window 5.*last good checkpoint"):
        train_lm(config, tmp_path / "run", progress=False)
    state = load_checkpoint(tmp_path / "run" / "last.npz").state
    assert state["batch"] == 3
    assert all(np.isfinite(p).all() for p in load_checkpoint(tmp_path / "run" / "last.npz").model.params)


def test_time_budget_stops_mid_epoch_and_a_larger_budget_goes_on(tmp_path):
    result = train_lm(_char_config(tmp_path, max_minutes=1e-9), tmp_path / "run", progress=False)
    rows = RunDir(tmp_path / "run").read_metrics()
    assert len(rows) == 1 and 0 < rows[0]["partial"] < 1  # one window, then out of time
    assert result["epochs"] == 1 and (tmp_path / "run" / "best.npz").exists()
    assert load_checkpoint(tmp_path / "run" / "last.npz").state["batch"] == 1
    train_lm(None, tmp_path / "run", resume=True, progress=False, overrides={"max_minutes": 1e6})
    rows = RunDir(tmp_path / "run").read_metrics()
    assert [r["epoch"] for r in rows] == [1, 2] and not any("partial" in r for r in rows)
    with pytest.raises(ValueError, match="only epochs.*not hidden"):
        train_lm(None, tmp_path / "run", resume=True, progress=False, overrides={"hidden": 64})


def test_an_existing_run_is_not_overwritten_without_resume(tmp_path):
    config = _char_config(tmp_path, epochs=1)
    train_lm(config, tmp_path / "run", progress=False)
    with pytest.raises(ValueError, match="already holds a run.*--resume"):
        train_lm(config, tmp_path / "run", progress=False)


def test_presets_hold_the_published_settings():
    small = make_config("zaremba-small")
    assert (small.layers, small.hidden, small.bptt, small.batch, small.init_scale, small.lr, small.lr_decay,
            small.decay_start, small.epochs, small.clip, small.dropout) == (2, 200, 20, 20, 0.1, 1.0, 0.5, 4, 13, 5.0, 0.0)
    medium = make_config("zaremba-medium", epochs=2)
    assert (medium.hidden, medium.bptt, medium.dropout, medium.init_scale, medium.lr_decay, medium.decay_start,
            medium.epochs) == (650, 35, 0.5, 0.05, 0.8, 6, 2)
    assert make_config("char-shakespeare").level == "char"
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        make_config("huge")
    assert LMConfig.from_dict(json.loads(json.dumps(small.to_dict()))) == small



def test_sum_over_time_scales_the_gradient_by_the_window_length(tmp_path, monkeypatch):
    """Zaremba's loss (summed over the window's steps, averaged over the batch) has bptt times
    the gradient of the per-token mean; the first window starts from the same weights either way."""
    norms = []

    def record(grads, max_norm):
        norms.append(float(np.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))))
        return norms[-1]

    def stop(epoch, window):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_loop, "clip_grad_norm", record)
    for sum_over_time in (False, True):
        config = _char_config(tmp_path, optimizer="sgd", dropout=0.0, clip=None, sum_over_time=sum_over_time)
        with pytest.raises(KeyboardInterrupt):
            train_lm(config, tmp_path / f"run{sum_over_time}", progress=False, on_window=stop)
    mean_norm, sum_norm = norms
    assert sum_norm == pytest.approx(config.bptt * mean_norm, rel=1e-5)
    assert make_config("zaremba-small").sum_over_time and make_config("zaremba-medium").sum_over_time
