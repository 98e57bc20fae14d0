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


# ---- classification and tagging ------------------------------------------------------------

def test_confusion_matrix_accuracy_and_macro_f1_by_hand():
    pred, ref = [0, 1, 1, 2, 2, 2], [0, 1, 2, 2, 2, 1]
    matrix = metrics.confusion_matrix(pred, ref, 3)
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 1], [0, 1, 2]]          # rows true, columns predicted
    assert metrics.accuracy(pred, ref) == pytest.approx(4 / 6)
    # F1: class 0 = 1; class 1: TP 1, FP 1, FN 1 -> 1/2; class 2: TP 2, FP 1, FN 1 -> 2/3
    assert metrics.macro_f1(pred, ref, 3) == pytest.approx((1 + 0.5 + 2 / 3) / 3)
    # a class absent from both references and predictions does not count in the mean
    assert metrics.macro_f1(pred, ref, 5) == pytest.approx((1 + 0.5 + 2 / 3) / 3)
    table = metrics.confusion_table(matrix, ["neg", "pos", "neutral"])
    assert table.splitlines()[0].split() == ["true", "\\", "pred", "neg", "pos", "neutral"]
    assert table.splitlines()[3].split() == ["neutral", "0", "1", "2"]


def test_masked_per_class_and_subset_accuracy():
    pred = np.array([[1, 2, 0], [2, 2, 2]])
    ref = np.array([[1, 1, 0], [2, 0, 0]])
    mask = np.array([[1, 1, 0], [1, 0, 0]], dtype=bool)                  # 3 real positions
    assert metrics.accuracy(pred, ref, mask) == pytest.approx(2 / 3)
    per_tag = metrics.per_class_accuracy(pred, ref, ["A", "B", "C"], mask)
    assert per_tag == {"B": (0.5, 2), "C": (1.0, 1)}
    unseen = np.array([[0, 1, 1], [1, 1, 1]], dtype=bool)
    assert metrics.subset_accuracy(pred, ref, unseen, mask) == (0.5, 2)
    assert metrics.subset_accuracy(pred, ref, np.zeros_like(unseen), mask) == (0.0, 0)
    with pytest.raises(ValueError, match="3 predictions for 2 references"):
        metrics.accuracy([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match=r"class ids must lie in \[0, 2\)"):
        metrics.confusion_matrix([0, 2], [0, 1], 2)


def test_bleu_applies_only_where_targets_have_4_grams():
    """A sum (one word) has no 4-gram: corpus BLEU is 0 at 100% exact match, so it does not apply."""
    from rnnlab.metrics import bleu_applies, corpus_bleu

    sums = ["91", "1001", "949"]
    assert corpus_bleu(sums, sums) == 0.0 and not bleu_applies(sums)
    sentences = ["the cat sat on the mat", "je ne sais pas", "ok"]
    assert bleu_applies(sentences) and corpus_bleu(sentences, sentences) == pytest.approx(100.0)
    assert not bleu_applies([])
