"""Defaults that work (issue 13): each trap the issue found has a test here.

- ``--optimizer adam`` without ``--lr`` kept lr 1.0 (the loss blew up);
- Adam inherited SGD's halving schedule (lr 3e-8 by epoch 20);
- ``--max-minutes`` without ``--epochs`` stopped when the default epochs ran out;
- ``--text`` trained at character level without saying so;
- an empty test split reported ``exact_match 0.0`` (should be null), and ``valid_exact_match``
  came from the last epoch while ``valid_loss`` came from the best one;
- the decode limit came from the longest training target, so one outlier made every sentence
  of an untrained model decode hundreds of steps.
"""
import json
import math

import numpy as np
import pytest

from rnnlab.data.pairs import PairData
from rnnlab.train.config import (BUDGET_PATIENCE, UNTIL_BUDGET_EPOCHS, budget_epochs, checkpoint_of,
                                 checkpoint_source)
from rnnlab.train.lm import LMConfig, LMTask, level_notice, looks_like_words, make_config, train_lm
from rnnlab.train.seq2seq import Seq2SeqConfig, decode_data, decode_limits, train_seq2seq


def _text(tmp_path, name="abc.txt"):
    path = tmp_path / name
    rng = np.random.default_rng(0)
    words = ["the cat", "a dog", "sat on", "the mat", "and ran", "away"]
    path.write_text("\n".join(" ".join(rng.choice(words, 4)) for _ in range(60)), encoding="utf-8")
    return path


def _tiny(tmp_path, **overrides):
    values = dict(text=str(_text(tmp_path)), level="char", hidden=12, emb=8, bptt=6, batch=3, epochs=1,
                  eval_batch=2)
    values.update(overrides)
    return make_config(**values)


# ---- learning rate and schedule per optimizer -------------------------------------------------

def test_adam_without_lr_gets_adams_rate_not_sgds():
    adam = LMConfig(optimizer="adam")
    assert adam.lr == pytest.approx(2e-3) and adam.lr_decay == 1.0 and adam.sum_over_time is False
    sgd = LMConfig()
    assert sgd.optimizer == "sgd" and sgd.lr == 1.0 and sgd.lr_decay == 0.5 and sgd.sum_over_time is True
    # the token level picks the optimizer when none is named: words SGD, characters Adam
    assert LMConfig(level="char").optimizer == "adam" and LMConfig(dataset="shakespeare").optimizer == "adam"
    assert LMConfig(text="my.txt").optimizer == "adam" and LMConfig(text="my.txt", level="word").optimizer == "sgd"
    assert LMConfig(level="char", optimizer="sgd").lr == 1.0
    assert LMConfig(optimizer="adamw").lr == pytest.approx(2e-3)
    # an explicit value always wins
    assert LMConfig(optimizer="adam", lr=0.01, lr_decay=0.9, sum_over_time=True).lr == 0.01
    assert make_config(optimizer="adam", lr_decay=0.9).lr_decay == 0.9
    # a preset made for SGD does not hand its lr 1 to Adam
    switched = make_config("zaremba-small", optimizer="adam")
    assert switched.lr == pytest.approx(2e-3) and switched.lr_decay == 1.0 and not switched.sum_over_time
    assert make_config("zaremba-small", optimizer="adam", lr=3e-3).lr == 3e-3
    assert make_config("zaremba-small").lr == 1.0 and make_config("char-shakespeare").lr == 2e-3


def test_adam_without_lr_trains_sanely(tmp_path):
    # with lr 1.0 Adam's loss went to ~1,600 nats; at its default rate one epoch brings the
    # training loss below the uniform guess (log of the vocabulary size)
    result = train_lm(_tiny(tmp_path, optimizer="adam", epochs=2), progress=False)
    vocab = result.task.corpus.vocab
    losses = [row["train_loss"] for row in result.history]
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < math.log(len(vocab)) and result["loss"] < math.log(len(vocab))


def test_adam_does_not_inherit_sgds_halving(tmp_path):
    task = LMTask(_tiny(tmp_path, optimizer="adam"))
    task.setup()
    assert task.schedule.lr_at(20) == pytest.approx(2e-3)      # was 2e-3 * 0.5 ** 16
    sgd = LMTask(_tiny(tmp_path, optimizer="sgd"))
    sgd.setup()
    assert sgd.schedule.lr_at(5) == 0.5 and sgd.schedule.lr_at(4) == 1.0   # SGD keeps Zaremba's
    asked = LMTask(_tiny(tmp_path, optimizer="adam", lr_decay=0.5))        # unless asked for it
    asked.setup()
    assert asked.schedule.lr_at(6) == pytest.approx(2e-3 * 0.25)


def test_stored_config_holds_the_values_it_trained_with(tmp_path):
    result = train_lm(_tiny(tmp_path, optimizer="adam"), tmp_path / "run", progress=False)
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    assert stored["lr"] == pytest.approx(2e-3) and stored["lr_decay"] == 1.0 and stored["sum_over_time"] is False
    assert LMConfig.from_run_config(stored).lr == pytest.approx(2e-3)
    assert result["checkpoint"] == "best" and result["checkpoint_epoch"] == 1


# ---- the time budget --------------------------------------------------------------------------

def test_a_budget_without_epochs_is_not_cut_short_by_the_default_epoch_count():
    assert budget_epochs(None, 3.0, None, 13) == (UNTIL_BUDGET_EPOCHS, BUDGET_PATIENCE)
    assert budget_epochs(None, 3.0, 7, 13) == (UNTIL_BUDGET_EPOCHS, 7)
    assert budget_epochs(5, 3.0, None, 13) == (5, None)     # --epochs wins
    assert budget_epochs(None, None, None, 13) == (13, None)


@pytest.mark.slow
def test_budget_run_trains_past_the_default_epochs_until_time_or_early_stopping(tmp_path):
    # the trap: --max-minutes 3 stopped after 19 s because the 13 default epochs ran out. Here
    # a budget of 0.05 min on a tiny corpus: the run ends by the budget or by early stopping
    # (with a default of 1 epoch, which the old rule would have stopped after)
    epochs, patience = budget_epochs(None, 0.05, None, 1)
    result = train_lm(_tiny(tmp_path, epochs=epochs, patience=patience, max_minutes=0.05, limit=300,
                            optimizer="adam", lr=0.02, lr_decay=0.5, decay_start=1),
                      tmp_path / "run", progress=False)
    assert result.stopped in ("time_budget", "early_stopping")


# ---- which level --text uses ------------------------------------------------------------------

def test_text_without_level_says_the_level_and_warns_on_a_word_corpus(tmp_path, capsys):
    ptb_like = tmp_path / "ptb_like.txt"
    ptb_like.write_text(" the <unk> company said N shares rose\n" * 50, encoding="utf-8")
    prose = tmp_path / "prose.txt"
    prose.write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 30, encoding="utf-8")
    assert looks_like_words(ptb_like.read_text()) and not looks_like_words(prose.read_text())
    assert looks_like_words("he said , `` yes . '' and left .\n" * 10)
    assert "warning" in level_notice(ptb_like) and "--level word" in level_notice(ptb_like)
    assert "character level" in level_notice(prose) and "warning" not in level_notice(prose)
    # said at the start of training, before the corpus summary
    task = LMTask(make_config(text=str(ptb_like), hidden=8, bptt=4, batch=2))
    task.setup()
    err = capsys.readouterr().err
    assert "looks like a word-level corpus" in err
    assert err.index("looks like") < err.index("(char level)")
    task = LMTask(make_config(text=str(ptb_like), level="word", hidden=8, bptt=4, batch=2))
    task.setup()
    assert "looks like" not in capsys.readouterr().err      # --level given: nothing to say


# ---- reports -----------------------------------------------------------------------------------

def test_checkpoint_source_names_the_best_epoch_and_its_row():
    history = [{"epoch": 1, "valid_loss": 0.5, "valid_exact_match": 0.2},
               {"epoch": 2, "valid_loss": 0.3, "valid_exact_match": 0.99},
               {"epoch": 3, "valid_loss": 0.4, "valid_exact_match": 0.90}]
    source, row = checkpoint_source(history)
    assert source == {"checkpoint": "best", "checkpoint_metric": "valid_loss", "checkpoint_epoch": 2}
    assert row["valid_exact_match"] == 0.99      # not the last epoch's 0.90
    assert checkpoint_source(history, "valid_exact_match", "max")[0]["checkpoint_epoch"] == 2
    assert checkpoint_source([])[0]["checkpoint"] == "last"
    assert checkpoint_of({"epoch": 3, "valid_loss": 0.1}, "best")["checkpoint_epoch"] == 3
    assert checkpoint_of({"epoch": 4, "batch": 0}, "last") == {"checkpoint": "last", "checkpoint_metric": None,
                                                               "checkpoint_epoch": 3}
    assert checkpoint_of({"epoch": 4, "batch": 7}, "last")["checkpoint_epoch"] == 4


def _pairs(n, seed=0):
    rng = np.random.default_rng(seed)
    words = ["ab", "cd", "ef", "gh"]
    return [(s, s[::-1]) for s in (" ".join(rng.choice(words, rng.integers(1, 3))) for _ in range(n))]


def test_empty_test_split_reports_null_not_zero(tmp_path):
    config = Seq2SeqConfig(attention="luong", hidden=8, emb=4, epochs=2, batch=8, progress=False)
    result = train_seq2seq(config, tmp_path / "run", pairs=(_pairs(40), _pairs(8, 1), []))
    assert result["test_pairs"] == 0
    for key in ("exact_match", "token_accuracy", "bleu", "loss"):
        assert result[key] is None, key
    stored = json.loads((tmp_path / "run" / "results.json").read_text())
    assert stored["exact_match"] is None and stored["test_pairs"] == 0
    # valid figures come from the checkpoint's own epoch
    row = next(r for r in result.history if r["epoch"] == result["checkpoint_epoch"])
    assert result["checkpoint"] == "best" and result["checkpoint_metric"] == "valid_loss"
    assert result["valid_loss"] == row["valid_loss"] and result["valid_exact_match"] == row["valid_exact_match"]


# ---- the decoding limit ------------------------------------------------------------------------

def test_decode_limit_follows_the_source_not_the_longest_target(tmp_path, monkeypatch):
    assert decode_limits([3, 10], None, cap=547) == [16, 30]
    assert decode_limits([3, 400], None, cap=100) == [16, 100]
    assert decode_limits([3, 10], 7, cap=547) == [7, 7]           # --max-decode-len wins
    # one 537-character target among short pairs: the cap grows, the limit of a short source not
    train = _pairs(40) + [("ab", "x" * 537)]
    config = Seq2SeqConfig(attention="luong", hidden=8, emb=4, epochs=1, batch=8, progress=False)
    steps = []
    from rnnlab.models.seq2seq import Seq2Seq

    real = Seq2Seq.translate_batch

    def spy(self, src, src_mask=None, max_len=50, **kwargs):
        steps.append((int(src.shape[1]), max_len))
        return real(self, src, src_mask, max_len=max_len, **kwargs)

    monkeypatch.setattr(Seq2Seq, "translate_batch", spy)
    result = train_seq2seq(config, pairs=(train, _pairs(10, 1), _pairs(10, 2)))
    task = result.task
    assert task.decode_cap == 547
    assert steps and all(max_len <= 2 * width + 10 for width, max_len in steps)   # was 547 each
    assert max(max_len for _, max_len in steps) <= 20      # sources of at most 5 characters
    outputs, _ = decode_data(result.model, task.valid, cap=task.decode_cap)
    limits = decode_limits([len(s) for s in task.valid.src_ids], None, task.decode_cap)
    assert all(len(o) <= n for o, n in zip(outputs, limits))


def test_source_and_target_levels_differ():
    data = PairData.build([("고양이가 잔다", "The cat sleeps."), ("개가 짖는다", "The dog barks.")], "char",
                          tgt_level="word")
    assert data.src_tokens[0][:3] == ["고", "양", "이"]
    assert data.tgt_tokens[0] == ["The", "cat", "sleeps", "."]
    assert "The" in data.tgt_vocab and "고" in data.src_vocab
    assert data.src_level == "char" and data.tgt_level == "word" and data.level == "word"


def test_reports_say_in_words_which_checkpoint():
    from rnnlab.train.config import describe_checkpoint

    assert describe_checkpoint({"checkpoint": "best", "checkpoint_metric": "valid_loss",
                                "checkpoint_epoch": 3}) == "best checkpoint by valid_loss, epoch 3"
    assert describe_checkpoint({"checkpoint": "last", "checkpoint_metric": None,
                                "checkpoint_epoch": 4}) == "last checkpoint, epoch 4"
