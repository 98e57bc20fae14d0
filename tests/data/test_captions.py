"""Captioning data: features + captions files, the digits, composed captions with disjoint sources."""
import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data.captions import DIGIT_WORDS, compose_digit_captions, load_digits, load_feature_captions

DATA = os.environ.get("RNNLAB_DATA")
needs_data = pytest.mark.skipif(not DATA or not Path(DATA, "digits").is_dir(),
                                reason="RNNLAB_DATA does not point at the shared datasets (digits/)")


def fake_digits(n=60):
    rng = np.random.default_rng(0)
    return rng.random((n, 8, 8)), np.arange(n) % 10


def test_composed_captions_use_disjoint_sources_and_are_deterministic():
    images, digits = fake_digits()
    a = compose_digit_captions(images, digits, n_train=200, n_valid=20, n_test=50, seed=3)
    b = compose_digit_captions(images, digits, n_train=200, n_valid=20, n_test=50, seed=3)
    assert a.train.captions == b.train.captions and np.array_equal(a.test.features, b.test.features)
    pools = [{i for row in split.sources for i in row} for split in (a.train, a.valid, a.test)]
    assert not (pools[0] & pools[2]) and not (pools[0] & pools[1]) and not (pools[1] & pools[2])
    assert a.feature_dim == 8 * 32
    for k in (0, 7):
        src, caption = a.train.sources[k], a.train.captions[k]
        assert caption == [DIGIT_WORDS[digits[i]] for i in src] and 1 <= len(caption) <= 4
        image = a.train.images[k]
        assert np.array_equal(image[:, :8], images[src[0]]) and not image[:, 8 * len(src):].any()
    batch = next(a.train.batches(4))
    assert (batch["tgt_in"][:, 0] == a.vocab.bos_id).all()
    lengths = batch["mask"].sum(axis=1)
    assert all(batch["tgt_out"][i, lengths[i] - 1] == a.vocab.eos_id for i in range(4))


def test_features_and_captions_files(tmp_path):
    np.save(tmp_path / "x.npy", np.arange(20.0).reshape(10, 2))
    (tmp_path / "c.txt").write_text("".join(f"word{i % 3} end\n" for i in range(10)))
    data = load_feature_captions(tmp_path / "x.npy", tmp_path / "c.txt", valid_fraction=0.2, test_fraction=0.2)
    assert (len(data.train), len(data.valid), len(data.test)) == (6, 2, 2)
    row = int(data.train.features[0, 0] // 2)
    assert data.train.captions[0] == [f"word{row % 3}", "end"]


def test_features_and_captions_of_different_counts_name_both_files(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((3, 2)))
    (tmp_path / "c.txt").write_text("a\nb\nc\nd\n")
    with pytest.raises(ValueError, match=r"c\.txt: 4 captions for 3 feature rows in .*x\.npy \(line 4"):
        load_feature_captions(tmp_path / "x.npy", tmp_path / "c.txt")
    (tmp_path / "c.txt").write_text("a\n\nc\n")
    with pytest.raises(ValueError, match=r"c\.txt, line 2: empty caption"):
        load_feature_captions(tmp_path / "x.npy", tmp_path / "c.txt")
    np.save(tmp_path / "x.npy", np.zeros(3))
    with pytest.raises(ValueError, match=r"x\.npy: expected an \(examples, features\) array"):
        load_feature_captions(tmp_path / "x.npy", tmp_path / "c.txt")


def test_bad_digits_file_names_line(tmp_path):
    path = tmp_path / "digits.csv.gz"
    path.write_bytes(gzip.compress(("0," * 64 + "3\n" + "0," * 10 + "3\n").encode()))
    with pytest.raises(ValueError, match=r"digits\.csv\.gz, line 2: expected 65 values"):
        load_digits(path)


@needs_data
def test_real_digits():
    images, digits = load_digits()
    assert images.shape == (1797, 8, 8) and images.min() == 0 and images.max() == 1
    assert np.bincount(digits).min() >= 170
    data = compose_digit_captions(images, digits, n_train=100, n_valid=10, n_test=30)
    assert len(data.test) == 30
