"""1-nearest-neighbour anchors for series classification: Euclidean and full-window DTW.

The UCR/UEA archive publishes both for every set; the defaults suite (``defaults_suite.py``)
computes them on the same files rnnlab trains on, so a row's anchor and its rnnlab figure are
measured on identical data. DTW is the dependent form (one warping path for all dimensions,
squared Euclidean distance between frames), with no window; Euclidean needs equal lengths and
is skipped (None) where the series differ. Series are compared as read (the archive's sets are
z-normalised per series already).
"""
from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:        # the anchors then take minutes instead of seconds on the long sets
    numba = None


def _dtw(a: np.ndarray, b: np.ndarray) -> float:
    """Squared-distance DTW between (T1, D) and (T2, D), full window, O(T1 T2) memory-light:
    two rows of the cost table."""
    n, m = a.shape[0], b.shape[0]
    previous = np.full(m + 1, np.inf)
    previous[0] = 0.0
    current = np.empty(m + 1)
    for i in range(1, n + 1):
        current[0] = np.inf
        for j in range(1, m + 1):
            cost = 0.0
            for d in range(a.shape[1]):
                diff = a[i - 1, d] - b[j - 1, d]
                cost += diff * diff
            best = previous[j - 1]
            if previous[j] < best:
                best = previous[j]
            if current[j - 1] < best:
                best = current[j - 1]
            current[j] = cost + best
        previous, current = current, previous
    return previous[m]


if numba is not None:
    _dtw = numba.njit(cache=False, nogil=True)(_dtw)


def _clean(series) -> list[np.ndarray]:
    """(T, D) float64 arrays with missing values (NaN) read as 0."""
    return [np.nan_to_num(np.asarray(s, dtype=np.float64)) for s in series]


def one_nn_accuracy(train, train_labels, test, test_labels, distance: str) -> float | None:
    """Accuracy of the 1-NN classifier under ``distance`` ("euclidean" or "dtw"); None for
    Euclidean on series of unequal length. Ties go to the first training series."""
    train, test = _clean(train), _clean(test)
    if distance == "euclidean":
        if len({s.shape for s in train + test}) != 1:
            return None
        a = np.stack([s.ravel() for s in train])
        b = np.stack([s.ravel() for s in test])
        d = (b * b).sum(1)[:, None] - 2 * b @ a.T + (a * a).sum(1)[None, :]
        nearest = d.argmin(axis=1)
    elif distance == "dtw":
        nearest = np.array([int(np.argmin([_dtw(q, s) for s in train])) for q in test])
    else:
        raise ValueError(f"distance must be 'euclidean' or 'dtw', got {distance!r}")
    predicted = np.asarray(train_labels)[nearest]
    return float(np.mean(predicted == np.asarray(test_labels)))
