import pytest

from rnnlab.data.vocab import Vocab


def test_build_orders_by_frequency_after_specials():
    vocab = Vocab.build([["b", "a", "b"], ["c", "b", "a"]])
    assert vocab.itos == ["<pad>", "<unk>", "<bos>", "<eos>", "b", "a", "c"]
    assert vocab.pad_id == 0 and vocab.eos_id == 3
    assert vocab.encode(["a", "zzz"]) == [5, vocab.unk_id]
    assert vocab.decode([2, 4, 5, 3, 0]) == ["b", "a"]


def test_vocab_without_unk_names_the_missing_token():
    vocab = Vocab(["x"], specials=("<eos>",))
    with pytest.raises(KeyError, match="'y'"):
        vocab.encode(["y"])


def test_json_round_trip(tmp_path):
    vocab = Vocab.build([list("안녕하세요 hello")], min_freq=1, max_size=8)
    assert len(vocab) == 8
    vocab.save(tmp_path / "v.json")
    again = Vocab.load(tmp_path / "v.json")
    assert again.itos == vocab.itos and again.specials == vocab.specials
