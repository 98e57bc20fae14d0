"""Length buckets, padding with masks, the length cap."""
import numpy as np
import pytest

from rnnlab.data.padding import cap_lengths, describe_cut, length_buckets, pad_chars, pad_ids, pad_vectors


def test_buckets_cover_every_example_once_and_group_similar_lengths():
    lengths = np.random.default_rng(0).integers(1, 50, size=103)
    batches = length_buckets(lengths, 10, shuffle=True, seed=1, epoch=0)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(103))
    assert all(len(b) <= 10 for b in batches)
    # sorted with a jitter below 1: within a batch lengths span little compared with the data's spread
    spans = [np.ptp(lengths[b]) for b in batches]
    assert np.mean(spans) < 8


def test_buckets_are_deterministic_by_seed_and_epoch():
    lengths = list(range(40))
    a = length_buckets(lengths, 8, seed=3, epoch=2)
    b = length_buckets(lengths, 8, seed=3, epoch=2)
    c = length_buckets(lengths, 8, seed=3, epoch=3)
    assert all((x == y).all() for x, y in zip(a, b))
    assert any(not np.array_equal(x, y) for x, y in zip(a, c))
    plain = length_buckets([3, 1, 2], 2, shuffle=False)
    assert [b.tolist() for b in plain] == [[1, 2], [0]]


def test_pad_ids_and_vectors_give_masks_of_real_steps():
    ids, mask = pad_ids([[5, 6, 7], [8]])
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    x, mask = pad_vectors([np.ones((2, 3)), np.ones((4, 3))])
    assert x.shape == (2, 4, 3) and x[0, 2:].sum() == 0 and mask.sum(axis=1).tolist() == [2, 4]
    chars = pad_chars([[[1, 2], [3]], [[4, 5, 6]]])
    assert chars.shape == (2, 2, 3) and chars[0, 1].tolist() == [3, 0, 0] and chars[1, 1].sum() == 0


def test_length_cap_truncates_and_reports_lines_or_refuses():
    seqs = [[1] * 3, [1] * 9, [1] * 5]
    cut = cap_lengths(seqs, 4, lines=[10, 11, 12], source="f.tsv")
    assert cut == [11, 12] and [len(s) for s in seqs] == [3, 4, 4]
    assert "lines 11, 12" in describe_cut(cut, "f.tsv", 4)
    with pytest.raises(ValueError, match=r"f\.tsv, line 11: .*length 9"):
        cap_lengths([[1] * 3, [1] * 9], 4, lines=[10, 11], source="f.tsv", on_long="error")
    assert cap_lengths(seqs, None) == []
