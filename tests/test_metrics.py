"""Metrics: definitions on hand-made cases; BLEU against sacreBLEU where it is installed."""
import math
import os

import numpy as np
import pytest

from rnnlab import metrics


def test_perplexity_and_bits_per_char():
    assert metrics.perplexity(math.log(120.0)) == pytest.approx(120.0)
    assert metrics.bits_per_char(math.log(2.0) * 1.5) == pytest.approx(1.5)


def test_exact_match_and_token_accuracy():
    preds = ["2020-01-02", "1999-12-31", "abc"]
    refs = ["2020-01-02", "1999-12-30", "abd"]
    assert metrics.exact_match(preds, refs) == pytest.approx(1 / 3)
    assert metrics.token_accuracy(preds, refs) == pytest.approx((10 + 9 + 2) / 23)
    with pytest.raises(ValueError, match="2 predictions for 3 references"):
        metrics.exact_match(preds[:2], refs)


def test_bleu_perfect_and_disjoint():
    refs = ["the cat sat on the mat .", "a dog barked loudly at night"]
    assert metrics.corpus_bleu(refs, refs) == pytest.approx(100.0)
    assert metrics.corpus_bleu(["zz yy", "qq"], refs) < 1.0


def test_bleu_brevity_penalty_by_hand():
    # hypothesis of 4 tokens, all n-grams correct, against a reference of 6 tokens
    hyp, ref = "a b c d", "a b c d e f"
    assert metrics.corpus_bleu([hyp], [ref]) == pytest.approx(100.0 * math.exp(1 - 6 / 4))


def test_tokenize_13a_splits_punctuation_but_not_numbers():
    assert metrics.tokenize_13a("Hello, world! It costs 3.50-4.00.") == \
        ["Hello", ",", "world", "!", "It", "costs", "3.50", "-", "4.00", "."]


def _sacrebleu():
    try:
        import sacrebleu
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("sacrebleu is not installed: pip install sacrebleu to compare BLEU with it")
    return sacrebleu


def test_bleu_matches_sacrebleu_on_random_sentences():
    sacrebleu = _sacrebleu()
    rng = np.random.default_rng(0)
    words = "the a cat dog sat on mat , . ran quickly 3.5 it's -- (yes)".split()
    hyps, refs = [], []
    for _ in range(40):
        refs.append(" ".join(rng.choice(words, size=rng.integers(3, 12))))
        hyps.append(" ".join(rng.choice(words, size=rng.integers(1, 12))))
    ours = metrics.corpus_bleu(hyps, refs)
    theirs = sacrebleu.corpus_bleu(hyps, [refs]).score
    assert ours == pytest.approx(theirs, abs=1e-9)
    partial = metrics.corpus_bleu(refs[:20] + hyps[20:], refs)
    assert partial == pytest.approx(sacrebleu.corpus_bleu(refs[:20] + hyps[20:], [refs]).score, abs=1e-9)
