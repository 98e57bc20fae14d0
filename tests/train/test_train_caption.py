"""CaptionTask on the loop: learns past the most-frequent-caption baseline, greedy and beam."""
import json
import os

import numpy as np
import pytest

from rnnlab.data.captions import load_feature_captions
from rnnlab.train.caption import CaptionConfig, majority_caption_accuracy, train_caption
from tasks_toy import write_feature_captions

DATA = os.environ.get("RNNLAB_DATA")


@pytest.mark.slow
def test_feature_captions_beat_the_majority_caption(tmp_path):
    X, captions = write_feature_captions(tmp_path, 500, 0)
    config = CaptionConfig(features=str(X), captions=str(captions), hidden=32, emb=8, epochs=8, batch=16,
                           lr=1e-2, beam=2, progress=False)
    result = train_caption(config, tmp_path / "run")
    baseline = majority_caption_accuracy(load_feature_captions(X, captions))
    assert baseline <= 0.15
    assert result["exact_match"] >= baseline + 0.4 and result["beam_exact_match"] >= baseline + 0.4
    assert 0 <= result["token_accuracy"] <= 1 and result["test_n"] == 50
    assert not (tmp_path / "run" / "captions.png").exists()   # no images to draw
    written = json.loads((tmp_path / "run" / "results.json").read_text())   # names its checkpoint (README)
    best = max(result.history, key=lambda row: row["valid_exact_match"])  # the first of equal values
    assert written["checkpoint"] == "best" and written["checkpoint_metric"] == "valid_exact_match"
    assert written["checkpoint_epoch"] == best["epoch"]


def test_max_decode_len_bounds_the_captions(tmp_path):
    X, captions = write_feature_captions(tmp_path, 120, 1)
    config = CaptionConfig(features=str(X), captions=str(captions), hidden=8, emb=4, epochs=1, batch=32,
                           max_decode_len=1, beam=2, progress=False)
    result = train_caption(config)
    examples = result["examples"]
    assert all(len(e["greedy"].split()) <= 1 and len(e["beam"].split()) <= 1 for e in examples)


@pytest.mark.skipif(not DATA or not os.path.isfile(os.path.join(DATA or "", "digits", "digits.csv.gz")),
                    reason="RNNLAB_DATA does not hold digits/digits.csv.gz")
@pytest.mark.slow
def test_digit_captions_slice_writes_the_sample_png(tmp_path):
    config = CaptionConfig(digits=True, n_train=300, n_valid=50, n_test=50, max_digits=1, hidden=32, epochs=5,
                           batch=16, lr=1e-2, beam=2, examples=4, progress=False)
    result = train_caption(config, tmp_path / "digits")
    # one digit per image: the caption is one of ten words, the majority caption about 10%
    assert result["exact_match"] >= majority_caption_accuracy(result.task.data) + 0.2
    assert (tmp_path / "digits" / "captions.png").exists() and len(result["examples"]) == 4
    assert np.isfinite(result["loss"])


@pytest.mark.slow
def test_a_run_from_before_the_decay_resumes_at_its_constant_rate(tmp_path):
    # caption runs written before lr_decay existed trained at a constant rate; today's default
    # (x0.6 after every epoch from the 4th) must not reach them when they resume
    default = CaptionConfig()
    assert default.lr_decay < 1 and default.decay_start == 4
    X, captions = write_feature_captions(tmp_path, 120, 2)
    config = CaptionConfig(features=str(X), captions=str(captions), hidden=8, emb=4, epochs=1, batch=32,
                           lr=1e-2, lr_decay=1.0, beam=1, progress=False)
    train_caption(config, tmp_path / "run")
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    del stored["lr_decay"], stored["decay_start"]          # as an older rnnlab wrote it
    (tmp_path / "run" / "config.json").write_text(json.dumps(stored))
    restored = CaptionConfig.from_run_config(stored)
    assert (restored.lr_decay, restored.decay_start) == (1.0, 1)
    resumed = train_caption(None, tmp_path / "run", resume=True, overrides={"epochs": 6})
    assert [row["lr"] for row in resumed.history] == [1e-2] * 6
    # --monitor may name exactly the validation figures the task reports
    assert set(CaptionConfig.MONITORS) == {key for key in resumed.history[-1] if key.startswith("valid_")}
