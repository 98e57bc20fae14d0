"""Truncated-BPTT streams: contiguous rows, windows in order, targets one step ahead."""
import numpy as np
import pytest

from rnnlab.data.batching import BPTTBatches, batchify


def test_batchify_lays_out_contiguous_streams_and_drops_the_tail():
    data = batchify(np.arange(14), 3)
    np.testing.assert_array_equal(data, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]])


def test_windows_continue_each_stream_and_targets_are_shifted():
    ids = np.arange(3 * 11)
    stream = BPTTBatches(ids, batch=3, bptt=4)
    windows = list(stream)
    assert len(stream) == len(windows) == 3  # 10 predicted steps per row: 4 + 4 + 2
    assert [w[0].shape for w in windows] == [(3, 4), (3, 4), (3, 2)]
    xs = np.concatenate([w[0] for w in windows], axis=1)
    ys = np.concatenate([w[1] for w in windows], axis=1)
    np.testing.assert_array_equal(xs, batchify(ids, 3)[:, :-1])  # every row read exactly once, in order
    np.testing.assert_array_equal(ys, xs + 1)
    assert stream.tokens == 30 == sum(w[1].size for w in windows)


def test_iter_from_resumes_at_a_window():
    stream = BPTTBatches(np.arange(40), batch=2, bptt=3)
    rest = list(stream.iter_from(2))
    assert len(rest) == len(stream) - 2
    np.testing.assert_array_equal(rest[0][0], stream[2][0])
    with pytest.raises(IndexError, match="window 99"):
        stream[99]


def test_too_few_tokens_for_the_batch_is_a_clear_error():
    with pytest.raises(ValueError, match="5 tokens are too few for 4 streams"):
        BPTTBatches(np.arange(5), batch=4, bptt=2)
    with pytest.raises(ValueError, match="bptt must be >= 1"):
        BPTTBatches(np.arange(50), batch=2, bptt=0)
