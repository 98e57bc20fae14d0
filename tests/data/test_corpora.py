"""Corpora: tokenization, vocabulary on train only, splits, file errors, dataset lookup, download."""
import hashlib
import io
import os
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data import corpora
from rnnlab.data.corpora import DataError, load_text, read_text, tokenize_lines


def write(path: Path, text: str, encoding="utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def test_word_tokens_end_each_line_with_eos_and_skip_blank_lines():
    assert tokenize_lines(" the cat \n\n sat down\n", "word") == ["the", "cat", "<eos>", "sat", "down", "<eos>"]


def test_word_vocab_comes_from_train_only(tmp_path):
    train = write(tmp_path / "train.txt", "a b a\nb a c\n")
    valid = write(tmp_path / "valid.txt", "a zebra\n")
    test = write(tmp_path / "test.txt", "c b\n")
    corpus = load_text(train, level="word", valid=valid, test=test)
    assert "zebra" not in corpus.vocab
    unk = corpus.vocab.unk_id
    assert corpus.valid.tolist() == [corpus.vocab.lookup("a"), unk, corpus.vocab.eos_id]
    assert corpus.vocab.itos[:2] == ["<unk>", "<eos>"]  # no <pad>/<bos>: LM softmax covers real tokens
    assert corpus.decode(corpus.train) == "a b a\nb a c\n"


def test_korean_text_works_at_char_level_and_round_trips(tmp_path):
    text = "안녕하세요, 세계!\n한국어 문장입니다.\n" * 20
    corpus = load_text(write(tmp_path / "ko.txt", text), level="char", split=(0.8, 0.1, 0.1))
    assert "한" in corpus.vocab and "\n" in corpus.vocab
    whole = np.concatenate([corpus.train, corpus.valid, corpus.test])
    assert corpus.decode(whole) == text  # contiguous, in order, nothing lost
    assert len(corpus.train) == round(0.8 * len(text))


def test_word_split_by_fraction_cuts_at_line_ends(tmp_path):
    lines = [f"line {i} has words" for i in range(100)]
    corpus = load_text(write(tmp_path / "t.txt", "\n".join(lines)), level="word", split=(0.8, 0.1, 0.1))
    eos = corpus.vocab.eos_id
    for part in (corpus.train, corpus.valid, corpus.test):
        assert part[-1] == eos
    assert [len(p) // 5 for p in (corpus.train, corpus.valid, corpus.test)] == [80, 10, 10]


@pytest.mark.parametrize("split", [(0.5, 0.6, 0.1), (0.8, 0.1), (0.9, -0.05, 0.15), (0.9, float("nan"), 0.1)])
def test_a_split_that_is_not_three_fractions_summing_to_one_is_refused_not_renormalised(tmp_path, split):
    path = write(tmp_path / "t.txt", "abcdefghij" * 10)
    with pytest.raises(ValueError, match=r"split .*(sum to 1|3 fractions)"):
        load_text(path, level="char", split=split)
    with pytest.raises(ValueError, match=r"split .*(sum to 1|3 fractions)"):
        corpora.split_corpus("abcdefghij" * 10, "char", split=split)


def test_separate_valid_file_takes_valid_and_train_file_gives_test(tmp_path):
    train = write(tmp_path / "train.txt", "abcdefghij" * 10)
    valid = write(tmp_path / "valid.txt", "xyz")
    corpus = load_text(train, level="char", valid=valid, split=(0.9, 0.05, 0.05))
    assert corpus.decode(corpus.valid) == "<unk>" * 3  # no x, y, z in the training text
    assert len(corpus.train) + len(corpus.test) == 100 and len(corpus.test) > 0


@pytest.mark.parametrize("content, match", [
    (b"", "empty"),
    (b"  \n\t\n", "empty"),
    ("caf\u00e9 au lait".encode("latin-1"), "not valid UTF-8"),
])
def test_bad_files_give_errors_naming_the_file(tmp_path, content, match):
    path = tmp_path / "corpus.txt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=f"{path}.*{match}"):
        load_text(path, level="char")


def test_missing_file_and_folder_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "nope.txt")):
        read_text(tmp_path / "nope.txt")
    with pytest.raises(DataError, match=f"{tmp_path}.*folder"):
        read_text(tmp_path)


def test_too_short_text_to_split_says_so(tmp_path):
    with pytest.raises(DataError, match=r"tiny\.txt.*too short.*valid"):
        load_text(write(tmp_path / "tiny.txt", "abc"), level="char")


def test_unknown_level_and_dataset_are_rejected(tmp_path):
    with pytest.raises(ValueError, match="level 'bytes'"):
        tokenize_lines("x", "bytes")
    with pytest.raises(ValueError, match="unknown dataset 'wiki'"):
        corpora.load_corpus("wiki")


@pytest.fixture
def fake_dataset(tmp_path, monkeypatch):
    """A dataset entry whose download is served from memory; no data dir, an empty cache."""
    payload = "to be or not to be\n".encode()
    checksum = hashlib.sha256(payload).hexdigest()
    monkeypatch.setitem(corpora.DATASETS, "fake", {"input": ("fake/input.txt", "https://example.invalid/input.txt",
                                                             checksum)})
    monkeypatch.delenv("RNNLAB_DATA", raising=False)
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    calls = []

    def serve(body):
        def urlopen(url, timeout=None):
            calls.append(url)
            return io.BytesIO(body)
        monkeypatch.setattr(urllib.request, "urlopen", urlopen)

    return payload, serve, calls, tmp_path / "cache" / "fake" / "input.txt"


def test_download_goes_to_cache_with_checksum_and_is_reused(fake_dataset):
    payload, serve, calls, cached = fake_dataset
    serve(payload)
    assert corpora.dataset_file("fake", "input") == cached
    assert cached.read_bytes() == payload
    assert corpora.dataset_file("fake", "input") == cached
    assert calls == ["https://example.invalid/input.txt"]  # second call read the cache


def test_download_with_wrong_checksum_keeps_nothing(fake_dataset):
    _, serve, _, cached = fake_dataset
    serve(b"tampered text\n")
    with pytest.raises(DataError, match="SHA-256.*expected"):
        corpora.dataset_file("fake", "input")
    assert not cached.exists() and not any(cached.parent.iterdir())


def test_tampered_cache_is_an_error_naming_the_file(fake_dataset):
    _, _, _, cached = fake_dataset
    cached.parent.mkdir(parents=True)
    cached.write_text("not the real file")
    with pytest.raises(DataError, match=f"{cached}.*SHA-256"):
        corpora.dataset_file("fake", "input")


def test_rnnlab_data_is_searched_before_the_cache(fake_dataset, tmp_path, monkeypatch):
    _, serve, calls, _ = fake_dataset
    (tmp_path / "data" / "fake").mkdir(parents=True)
    local = write(tmp_path / "data" / "fake" / "input.txt", "local copy\n")
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "data"))
    assert corpora.dataset_file("fake", "input") == local
    assert corpora.dataset_file("fake", "input", path=tmp_path / "data") == local
    assert calls == []


@pytest.fixture
def fake_folder_dataset(tmp_path, monkeypatch):
    """A two-file dataset in one folder, served from memory by address; no data dir, empty cache."""
    bodies = {"https://example.invalid/a.ts": b"series a\n", "https://example.invalid/b.ts": b"series b\n"}
    monkeypatch.setitem(corpora.DATASETS, "fake-series", {
        part: (f"series/fake/{part}.ts", f"https://example.invalid/{part}.ts", hashlib.sha256(body).hexdigest())
        for part, body in (("a", b"series a\n"), ("b", b"series b\n"))})
    monkeypatch.delenv("RNNLAB_DATA", raising=False)
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    calls = []

    def urlopen(url, timeout=None):
        calls.append(url)
        return io.BytesIO(bodies[url])
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return calls, tmp_path / "cache" / "series" / "fake"


def test_dataset_folder_downloads_every_file_of_the_folder_once(fake_folder_dataset):
    calls, cached = fake_folder_dataset
    assert corpora.dataset_folder("series/fake") == cached
    assert (cached / "a.ts").read_bytes() == b"series a\n" and (cached / "b.ts").read_bytes() == b"series b\n"
    assert corpora.dataset_folder("series/fake") == cached
    assert sorted(calls) == ["https://example.invalid/a.ts", "https://example.invalid/b.ts"]  # then the cache


def test_dataset_folder_prefers_a_path_then_rnnlab_data(fake_folder_dataset, tmp_path, monkeypatch):
    calls, _ = fake_folder_dataset
    local = tmp_path / "data" / "series" / "fake"
    local.mkdir(parents=True)
    monkeypatch.setenv("RNNLAB_DATA", str(tmp_path / "data"))
    assert corpora.dataset_folder("series/fake") == local
    assert corpora.dataset_folder("series/fake", path=tmp_path) == tmp_path
    assert calls == []
    with pytest.raises(FileNotFoundError, match="nowhere.*does not exist"):
        corpora.dataset_folder("series/fake", path=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="unknown/set.*does not exist, or give its path"):
        corpora.dataset_folder("unknown/set")


def test_every_known_file_has_the_shared_datas_checksum():
    """The addresses' checksums are those of ../shared/data/SHA256SUMS (a typo would refuse the download)."""
    root = _shared("SHA256SUMS")
    sums = dict(reversed(line.split()) for line in (root / "SHA256SUMS").read_text().splitlines() if line.strip())
    for dataset, files in corpora.DATASETS.items():
        for part, (relpath, url, checksum) in files.items():
            assert url.startswith("https://raw.githubusercontent.com/"), (dataset, part)
            assert sums[relpath] == checksum, (dataset, part)


def test_the_digits_load_from_a_download_when_no_data_folder_is_set(tmp_path, monkeypatch):
    """A fresh machine: no $RNNLAB_DATA; the digits come from their address into the cache."""
    from rnnlab.data.captions import load_digits
    body = (_shared("digits", "digits.csv.gz") / "digits" / "digits.csv.gz").read_bytes()
    monkeypatch.delenv("RNNLAB_DATA", raising=False)
    monkeypatch.setenv("RNNLAB_CACHE", str(tmp_path / "cache"))
    calls = []

    def urlopen(url, timeout=None):
        calls.append(url)
        return io.BytesIO(body)
    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    images, digits = load_digits()
    assert images.shape == (1797, 8, 8) and sorted(set(digits.tolist())) == list(range(10))
    assert calls == [corpora.DATASETS["digits"]["images"][1]]
    assert (tmp_path / "cache" / "digits" / "digits.csv.gz").read_bytes() == body


def _shared(*parts):
    root = os.environ.get("RNNLAB_DATA")
    if not root or not Path(root, *parts).is_file():
        pytest.skip(f"{Path(*parts)} not found: set RNNLAB_DATA to the shared data folder (CI sets it)")
    return Path(root)


def test_ptb_has_mikolovs_vocabulary_and_token_counts():
    _shared("ptb", "ptb.train.txt")
    corpus = corpora.load_ptb()
    assert len(corpus.vocab) == 10_000
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (929_589, 73_760, 82_430)
    assert corpus.decode(corpus.valid[:6]).split()[:3] == ["consumers", "may", "want"]


def test_shakespeare_has_65_characters_and_splits_in_order():
    root = _shared("tinyshakespeare", "input.txt")
    corpus = corpora.load_shakespeare()
    text = (root / "tinyshakespeare" / "input.txt").read_text(encoding="utf-8")
    assert len(corpus.vocab) == 65 + 1  # + <unk>
    assert len(corpus.train) + len(corpus.valid) + len(corpus.test) == len(text) == 1_115_394
    assert corpus.decode(corpus.test[-20:]) == text[-20:]
