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
