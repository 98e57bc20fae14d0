"""Evaluation figures: perplexity, bits per character, exact match, token accuracy, BLEU.

``corpus_bleu`` follows the definition of Papineni et al. (2002) with the conventions of
sacreBLEU's defaults (13a tokenization, n-grams up to 4, one reference, 'exp' smoothing, score
in 0..100), so figures are comparable with published ones; a test checks it against sacreBLEU.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence


def perplexity(mean_nll: float) -> float:
    """exp of the mean negative log-likelihood per token (nats)."""
    return float(math.exp(min(mean_nll, 700.0)))


def bits_per_char(mean_nll: float) -> float:
    """Mean negative log-likelihood per character, converted from nats to bits."""
    return float(mean_nll / math.log(2.0))


def exact_match(predictions: Sequence, references: Sequence) -> float:
    """Fraction of predictions equal to their reference (whole sequence)."""
    _same_length(predictions, references)
    if not references:
        return 0.0
    return sum(list(p) == list(r) for p, r in zip(predictions, references)) / len(references)


def token_accuracy(predictions: Sequence, references: Sequence) -> float:
    """Fraction of reference positions whose token the prediction has at the same position."""
    _same_length(predictions, references)
    total = sum(len(r) for r in references)
    if total == 0:
        return 0.0
    correct = sum(sum(a == b for a, b in zip(p, r)) for p, r in zip(predictions, references))
    return correct / total


def _same_length(predictions, references):
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")


_13A_RULES = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # punctuation and symbols
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # period/comma unless preceded by a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # ... unless followed by a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),  # dash after a digit
]


def tokenize_13a(line: str) -> list[str]:
    """The mteval-v13a tokenization that sacreBLEU applies by default."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = line.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    line = f" {line} "
    for pattern, repl in _13A_RULES:
        line = pattern.sub(repl, line)
    return line.split()


def _ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def corpus_bleu(hypotheses: Sequence[str], references: Sequence[str], max_order: int = 4) -> float:
    """Corpus BLEU (0..100) of detokenized hypothesis strings against one reference each."""
    _same_length(hypotheses, references)
    correct = [0] * max_order
    total = [0] * max_order
    hyp_len = ref_len = 0
    for hyp, ref in zip(hypotheses, references):
        h, r = tokenize_13a(hyp), tokenize_13a(ref)
        hyp_len += len(h)
        ref_len += len(r)
        for n in range(1, max_order + 1):
            h_counts, r_counts = _ngrams(h, n), _ngrams(r, n)
            correct[n - 1] += sum(min(c, r_counts[g]) for g, c in h_counts.items())
            total[n - 1] += max(len(h) - n + 1, 0)
    if hyp_len == 0:
        return 0.0
    log_precision = 0.0
    smooth = 1.0
    for n in range(max_order):
        if total[n] == 0:
            return 0.0
        if correct[n] == 0:
            smooth *= 2.0  # 'exp' smoothing: 1 / (2^k * total) for the k-th empty order
            precision = 1.0 / (smooth * total[n])
        else:
            precision = correct[n] / total[n]
        log_precision += math.log(precision) / max_order
    brevity = 1.0 if hyp_len >= ref_len else math.exp(1.0 - ref_len / hyp_len)
    return 100.0 * brevity * math.exp(log_precision)
