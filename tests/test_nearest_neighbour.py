"""benchmarks/nearest_neighbour.py: the 1-NN anchors the defaults suite compares against."""
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from nearest_neighbour import one_nn_accuracy  # noqa: E402


def test_dtw_matches_a_shifted_shape_that_euclidean_misses():
    bump = lambda at: np.exp(-0.5 * ((np.arange(30) - at) / 2.0) ** 2)[:, None]   # noqa: E731
    train = [bump(8), np.zeros((30, 1))]                      # class a: a bump early; class b: flat
    labels = ["a", "b"]
    test = [bump(20)]                                         # the same bump, later
    assert one_nn_accuracy(train, labels, test, ["a"], "dtw") == 1.0        # warping aligns the bumps
    assert one_nn_accuracy(train, labels, test, ["a"], "euclidean") == 0.0  # pointwise, flat is nearer


def test_euclidean_needs_equal_lengths_and_distances_are_named():
    train, test = [np.zeros((5, 2)), np.ones((5, 2))], [np.full((5, 2), 0.9), np.full((5, 2), 0.1)]
    assert one_nn_accuracy(train, [0, 1], test, [1, 0], "euclidean") == 1.0
    assert one_nn_accuracy(train, [0, 1], [np.ones((4, 2))], [1], "euclidean") is None
    try:
        one_nn_accuracy(train, [0, 1], test, [1, 0], "cosine")
    except ValueError as err:
        assert "cosine" in str(err)
    else:
        raise AssertionError("an unknown distance must be refused")
