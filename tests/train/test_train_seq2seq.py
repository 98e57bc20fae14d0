"""The seq2seq trainer: a tiny attention model learns a tiny dates set; runs reload exactly."""
import numpy as np
import pytest

from rnnlab.train.seq2seq import Seq2SeqConfig, Translator, train_seq2seq


@pytest.mark.slow
def test_tiny_attention_model_learns_dates(tmp_path):
    # 1,200 training dates, GRU 32, Luong attention, 12 short epochs (about 2 s). Chance is
    # essentially 0% exact match; a model that learnt the formats gets most dates right.
    config = Seq2SeqConfig(generated="dates", n=1500, attention="luong", score="general", cell="gru",
                           hidden=32, emb=16, epochs=12, batch=32, lr=0.01, lr_decay=1.0, progress=False)
    result = train_seq2seq(config, tmp_path / "run")
    assert result["exact_match"] > 0.5, result["examples"]
    assert result["token_accuracy"] > 0.9
    # the run directory reloads to the same model: same translations of the test examples
    translator = Translator(tmp_path / "run")
    sources = [ex["source"] for ex in result["examples"]]
    assert [r["translation"] for r in translator(sources)] == [ex["prediction"] for ex in result["examples"]]
    weights = translator(sources[:2])[0]["attention"]  # the shorter one is padded in the batch
    assert weights.shape[1] == len(sources[0])
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, rtol=1e-5)


def test_config_round_trip():
    config = Seq2SeqConfig(generated="addition", split=(0.7, 0.2, 0.1), reverse=True)
    assert Seq2SeqConfig.from_dict(config.to_dict()) == config


def test_the_plateau_schedule_keeps_the_rate_while_the_loss_falls_and_floors_it():
    """Budget mode's trap: a halving per epoch from epoch 3 left lr 3e-3 * 0.5 ** 12 < 1e-6 after
    15 epochs while the loss still fell. The plateau schedule keeps the rate as long as each epoch
    gains min_delta, and never goes below lr / 100."""
    from rnnlab.optim import Adam
    from rnnlab.train.seq2seq import PLATEAU_FLOOR, make_schedule

    config = Seq2SeqConfig(generated="dates")
    opt = Adam(lr=config.lr)
    schedule = make_schedule(config, opt)
    loss = 3.0
    for epoch in range(1, 16):
        loss -= 0.01                      # still learning: 10x min_delta an epoch
        schedule.epoch_end(epoch, {"valid_loss": loss})
    assert schedule.lr_at(16) == opt.lr == config.lr
    for epoch in range(16, 40):
        loss -= 1e-4                      # the creep that held off early stopping
        schedule.epoch_end(epoch, {"valid_loss": loss})
    assert opt.lr == config.lr * PLATEAU_FLOOR
    step = make_schedule(Seq2SeqConfig(generated="dates", lr_schedule="step"), Adam(lr=config.lr))
    assert step.lr_at(5) == config.lr * 0.25
    # the config refuses an unknown schedule on construction (its setting's choices)
    with pytest.raises(ValueError, match="Seq2SeqConfig: lr_schedule must be one of plateau, step, got 'cosine'"):
        Seq2SeqConfig(generated="dates", lr_schedule="cosine")
