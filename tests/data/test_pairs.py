"""TSV pairs: reading (Tatoeba format, errors naming the file), tokens, splits, padded batches."""
import numpy as np
import pytest

from rnnlab.data.pairs import PairData, batches, detokenize, read_pairs, split_pairs, tokenize


def test_read_tatoeba_lines_with_attribution(tmp_path):
    path = tmp_path / "fra.txt"
    path.write_text("Go.\tVa !\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272\n\nRun!\tCours !\n",
                    encoding="utf-8")
    assert read_pairs(path) == [("Go.", "Va !"), ("Run!", "Cours !")]
    assert read_pairs(path, swap=True) == [("Va !", "Go."), ("Cours !", "Run!")]
    assert read_pairs(path, limit=1) == [("Go.", "Va !")]


def test_bad_files_name_the_file(tmp_path):
    empty = tmp_path / "empty.tsv"
    empty.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty.tsv.*empty"):
        read_pairs(empty)
    latin = tmp_path / "latin1.tsv"
    latin.write_bytes("caf\xe9\tcoffee\n".encode("latin-1"))
    with pytest.raises(ValueError, match="latin1.tsv.*UTF-8"):
        read_pairs(latin)
    one_column = tmp_path / "cols.tsv"
    one_column.write_text("a\tb\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="cols.tsv, line 2"):
        read_pairs(one_column)
    with pytest.raises(FileNotFoundError, match="missing.tsv"):
        read_pairs(tmp_path / "missing.tsv")


def test_word_tokens_and_detokenize_round_trip():
    text = "Qu'est-ce que c'est ? Il a 3,5 ans."
    tokens = tokenize(text, "word")
    assert tokens[:5] == ["Qu", "'", "est", "-", "ce"]
    assert detokenize(tokens, "word") == "Qu'est-ce que c'est ? Il a 3 , 5 ans ."
    assert tokenize("Ab c", "char", lower=True) == ["a", "b", " ", "c"]
    assert detokenize(list("16+75"), "char") == "16+75"
    with pytest.raises(ValueError, match="token level"):
        tokenize("x", "byte")


def test_split_is_seeded_and_disjoint():
    pairs = [(str(i), str(i)) for i in range(100)]
    train, valid, test = split_pairs(pairs, (0.8, 0.1, 0.1), seed=3)
    assert (len(train), len(valid), len(test)) == (80, 10, 10)
    assert sorted(train + valid + test) == sorted(pairs)
    assert split_pairs(pairs, (0.8, 0.1, 0.1), seed=3)[1] == valid
    with pytest.raises(ValueError, match="sum to 1"):
        split_pairs(pairs, (0.5, 0.1, 0.1))


def test_batches_pad_mask_shift_and_cover_everything():
    pairs = [("abc", "xy"), ("a", "x"), ("abcdef", "xyz"), ("ab", ""), ("bca", "yx")]
    data = PairData.build(pairs, "char")
    seen = []
    for b in data.batches(2, shuffle=True, seed=0):
        seen.extend(b.index.tolist())
        for row, i in enumerate(b.index):
            src, tgt = data.src_ids[i], data.tgt_ids[i]
            n, m = len(src), len(tgt)
            assert b.src[row, :n].tolist() == src and (b.src[row, n:] == 0).all()
            assert b.src_mask[row].sum() == n == b.src_lengths[row]
            assert b.tgt_in[row, :m + 1].tolist() == [data.tgt_vocab.bos_id, *tgt]
            assert b.tgt_out[row, :m + 1].tolist() == [*tgt, data.tgt_vocab.eos_id]
            assert b.tgt_mask[row].sum() == m + 1
    assert sorted(seen) == list(range(len(pairs)))


def test_buckets_group_similar_lengths():
    rng = np.random.default_rng(0)
    src = [[1] * int(n) for n in rng.integers(1, 40, size=400)]
    tgt = [[1]] * 400
    padded = sum(b.src.size for b in batches(src, tgt, 20, 2, 3, shuffle=True, rng=rng))
    unbucketed = sum(b.src.size for b in batches(src, tgt, 20, 2, 3, shuffle=True, rng=rng, bucket=False))
    assert padded < 0.7 * unbucketed


def test_unknown_tokens_in_other_splits_become_unk():
    train = PairData.build([("ab", "xy")], "char")
    other = PairData([("az", "xq")], train.src_vocab, train.tgt_vocab, "char")
    assert other.src_ids[0][1] == train.src_vocab.unk_id
    with pytest.raises(ValueError, match="empty source"):
        PairData([("", "x")], train.src_vocab, train.tgt_vocab)


def test_the_books_underscore_files_are_read_and_said_so(tmp_path, capsys):
    """Deep Learning from Scratch 2's date.txt / addition.txt: fixed-width lines, the target
    after the first '_'; the padding goes, the spaces inside a side stay."""
    from rnnlab.data.generated import addition, write_book

    book = tmp_path / "date.txt"
    book.write_text("september 27, 1994           _1994-09-27\nAugust 19, 2003              _2003-08-19\n",
                    encoding="utf-8")
    assert read_pairs(book) == [("september 27, 1994", "1994-09-27"), ("August 19, 2003", "2003-08-19")]
    assert "split at its first '_'" in capsys.readouterr().err
    pairs = addition(50, seed=1)
    write_book(pairs, tmp_path / "addition.txt")
    first = (tmp_path / "addition.txt").read_text(encoding="utf-8").split("\n")[0]
    assert first == pairs[0][0].ljust(7) + "_" + pairs[0][1].ljust(4)   # the book's widths: 7 and 4
    assert read_pairs(tmp_path / "addition.txt") == pairs


def test_a_separator_given_and_lines_that_have_none(tmp_path, capsys):
    path = tmp_path / "pipes.txt"
    path.write_text("a b|x|y\nc|z\n", encoding="utf-8")
    assert read_pairs(path, sep="|") == [("a b", "x|y"), ("c", "z")]   # split at the first one
    assert capsys.readouterr().err == ""                               # nothing guessed: nothing said
    mixed = tmp_path / "mixed.txt"
    mixed.write_text("1+1_2\n2+2 4\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"mixed.txt, line 2: expected 'source<TAB>target' \(or.*'source_target'"):
        read_pairs(mixed)


def test_unicode_line_separators_inside_a_pair_do_not_cut_it(tmp_path):
    path = tmp_path / "odd.tsv"
    path.write_text("a\u2028b\u0085c\tx\x0cy\r\nd\te\n", encoding="utf-8")
    assert read_pairs(path) == [("a\u2028b\u0085c", "x\x0cy"), ("d", "e")]
