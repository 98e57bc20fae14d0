"""Evaluation figures: perplexity, bits per character, exact match, token accuracy, BLEU; accuracy,
macro F1, confusion matrices, per-class and subset accuracy (classifiers and taggers).

``corpus_bleu`` follows the definition of Papineni et al. (2002) with the conventions of
sacreBLEU's defaults (13a tokenization, n-grams up to 4, one reference, 'exp' smoothing, score
in 0..100), so figures are comparable with published ones; a test checks it against sacreBLEU.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from typing import Sequence

import numpy as np


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


def bleu_applies(references: Sequence[str], max_order: int = 4) -> bool:
    """Whether BLEU measures anything on these references: at least half of them hold
    ``max_order`` words (13a tokens). BLEU is the geometric mean of the 1- to 4-gram precisions
    of words; on targets of one to three words (a sum such as ``91``, a date ``1994-09-27``)
    there are no 4-grams, and corpus BLEU is 0 however right the outputs are."""
    long_enough = sum(len(tokenize_13a(r)) >= max_order for r in references)
    return len(references) > 0 and 2 * long_enough >= len(references)


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


# ---- classification and tagging ------------------------------------------------------------

def _flat_ints(values, what: str):
    array = np.asarray(values)
    if array.dtype.kind not in "iub":
        raise ValueError(f"{what} must be integer class ids, got dtype {array.dtype}")
    return array.reshape(-1).astype(np.int64)


def _pair(predictions, references, mask=None):
    """Flat int arrays of predictions and references (positions where ``mask`` is True)."""
    pred, ref = _flat_ints(predictions, "predictions"), _flat_ints(references, "references")
    if pred.shape != ref.shape:
        raise ValueError(f"{pred.size} predictions for {ref.size} references")
    if mask is not None:
        keep = np.asarray(mask, dtype=bool).reshape(-1)
        if keep.shape != pred.shape:
            raise ValueError(f"mask of {keep.size} positions for {pred.size} predictions")
        pred, ref = pred[keep], ref[keep]
    return pred, ref


def accuracy(predictions, references, mask=None) -> float:
    """Fraction of positions (where ``mask`` is True) whose predicted id equals the reference;
    0.0 when there are none. Arrays of any shape (a tagger's (B, T) with its mask)."""
    pred, ref = _pair(predictions, references, mask)
    return float((pred == ref).mean()) if ref.size else 0.0


# Class counts above which a classifier's results hold less than everything (the memory of the
# full forms grows with the square of the class count): results.json keeps the whole confusion
# matrix up to MAX_MATRIX_CLASSES (32 MB as int64 at 2,000; 10,000 classes would be 800 MB, and
# several GB as JSON), a picture or printed table shows it up to MAX_SHOWN_CLASSES (0.45 in a
# class: 1,000 would need about 8 GB to draw). ``top_confusions`` is the table for any count.
MAX_MATRIX_CLASSES = 2000
MAX_SHOWN_CLASSES = 50
TOP_CONFUSIONS = 20


def confusion_matrix(predictions, references, num_classes: int | None = None, mask=None):
    """(C, C) int64 counts: row = true class, column = predicted class."""
    pred, ref = _pair(predictions, references, mask)
    num_classes = _class_count(pred, ref, num_classes)
    return np.bincount(ref * num_classes + pred, minlength=num_classes * num_classes).reshape(
        num_classes, num_classes)


def _class_count(pred, ref, num_classes: int | None) -> int:
    """``num_classes`` (None: the largest id + 1), every id checked to lie below it."""
    if num_classes is None:
        num_classes = int(max(pred.max(initial=-1), ref.max(initial=-1))) + 1
    if pred.size and (min(pred.min(), ref.min()) < 0 or max(pred.max(), ref.max()) >= num_classes):
        raise ValueError(f"class ids must lie in [0, {num_classes})")
    return num_classes


def top_confusions(predictions, references, labels, k: int = TOP_CONFUSIONS, mask=None) -> list[dict]:
    """The ``k`` most frequent mistakes, most frequent first (equal counts: by true, then
    predicted class id): ``[{"true": label, "predicted": label, "count": n}]``. Counted from the
    mistakes alone, so its memory grows with the number of examples, not with the square of
    the class count: the confusion table of any number of classes."""
    pred, ref = _pair(predictions, references, mask)
    n = _class_count(pred, ref, len(labels))
    wrong = pred != ref
    pairs, counts = np.unique(ref[wrong].astype(np.int64) * n + pred[wrong], return_counts=True)
    order = np.lexsort((pairs, -counts))[:k]
    return [{"true": str(labels[pairs[i] // n]), "predicted": str(labels[pairs[i] % n]), "count": int(counts[i])}
            for i in order]


def top_confusions_table(rows: list[dict], max_label: int = 24) -> str:
    """``top_confusions`` as a text table: true label, predicted label, count."""
    width = max([len(str(r[key])[:max_label]) for r in rows for key in ("true", "predicted")] + [9])
    lines = [f"{'true':<{width}} {'predicted':<{width}} count"]
    lines += [f"{str(r['true'])[:max_label]:<{width}} {str(r['predicted'])[:max_label]:<{width}} {r['count']}"
              for r in rows]
    return "\n".join(lines)


def macro_f1(predictions, references, num_classes: int | None = None, mask=None) -> float:
    """Unweighted mean of the per-class F1, 2 TP / (2 TP + FP + FN), over the classes that occur
    (in the references or the predictions), as scikit-learn's ``f1_score(average="macro")``.
    Counted per class (memory of the class count, not of its square)."""
    pred, ref = _pair(predictions, references, mask)
    num_classes = _class_count(pred, ref, num_classes)
    true_positives = np.bincount(ref[pred == ref], minlength=num_classes).astype(np.float64)
    denominator = (np.bincount(pred, minlength=num_classes) + np.bincount(ref, minlength=num_classes)).astype(
        np.float64)   # (TP + FP) + (TP + FN)
    present = denominator > 0
    return float((2 * true_positives[present] / denominator[present]).mean()) if present.any() else 0.0


def per_class_accuracy(predictions, references, labels, mask=None) -> dict:
    """{label: (fraction of that label's reference positions predicted right, count)}, for the
    labels that occur in the references (a tagger's per-tag accuracy, i.e. recall per tag)."""
    matrix = confusion_matrix(predictions, references, len(labels), mask)
    totals = matrix.sum(axis=1)
    return {str(label): (float(matrix[i, i] / totals[i]), int(totals[i]))
            for i, label in enumerate(labels) if totals[i] > 0}


def subset_accuracy(predictions, references, subset, mask=None) -> tuple[float, int]:
    """(accuracy, count) over the positions where ``subset`` (and ``mask``) is True: e.g. the
    words unseen in training. (0.0, 0) when there are none."""
    keep = np.asarray(subset, dtype=bool)
    if mask is not None:
        keep = keep & np.asarray(mask, dtype=bool)
    pred, ref = _pair(predictions, references, keep)
    return (float((pred == ref).mean()) if ref.size else 0.0), int(ref.size)


def confusion_table(matrix, labels, max_label: int = 12) -> str:
    """The confusion matrix as a text table: rows true labels, columns predicted."""
    matrix = np.asarray(matrix)
    names = [str(label)[:max_label] for label in labels]
    if matrix.shape != (len(names), len(names)):
        raise ValueError(f"a {matrix.shape} matrix for {len(names)} labels")
    width = max([len(n) for n in names] + [len(str(int(matrix.max(initial=0)))), 4])
    head = "true \\ pred".ljust(max(len("true \\ pred"), width))
    lines = [head + " " + " ".join(n.rjust(width) for n in names)]
    for name, row in zip(names, matrix):
        lines.append(name.ljust(len(head)) + " " + " ".join(str(int(v)).rjust(width) for v in row))
    return "\n".join(lines)
