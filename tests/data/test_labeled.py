"""Sentence classification data: TSV files, SST-2 by name, batches."""
import os
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data.labeled import load_sst2, load_tsv_classification, read_labeled_tsv

DATA = os.environ.get("RNNLAB_DATA")
needs_data = pytest.mark.skipif(not DATA or not Path(DATA, "sentiment").is_dir(),
                                reason="RNNLAB_DATA does not point at the shared datasets (sentiment/)")


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_tsv_multiclass_with_header_vocab_from_train(tmp_path):
    train = write(tmp_path / "train.tsv", "sentence\tlabel\na good film\tpos\na bad film\tneg\nan ok film\tmid\n")
    test = write(tmp_path / "test.tsv", "a good zebra\tpos\n")
    data = load_tsv_classification(train, test=test)
    assert data.labels == ["mid", "neg", "pos"] and data.num_classes == 3
    assert data.train.labels.tolist() == [2, 1, 0]
    assert data.train.lines == [2, 3, 4]
    assert data.vocab.itos[:2] == ["<pad>", "<unk>"]
    assert data.test.inputs[0][2] == data.vocab.unk_id          # "zebra" is not in train
    assert data.encode_text("good film") == data.vocab.encode(["good", "film"])


def test_numeric_labels_sort_as_numbers(tmp_path):
    train = write(tmp_path / "t.tsv", "a\t10\nb\t2\nc\t1\n")
    assert load_tsv_classification(train).labels == ["1", "2", "10"]


@pytest.mark.parametrize("text, message", [
    ("a good film\tpos\njust text without a label\n", r"t\.tsv, line 2: no label column"),
    ("a good film\tpos\nsome text\t \n", r"t\.tsv, line 2: the label column is empty"),
    ("pos\ta good film\n", r"t\.tsv, line 1: 'a good film' is not a label"),
    ("\tpos\n", r"t\.tsv, line 1: the text column is empty"),
])
def test_bad_tsv_lines_name_file_and_line(tmp_path, text, message):
    with pytest.raises(ValueError, match=message):
        read_labeled_tsv(write(tmp_path / "t.tsv", text))


def test_unlabelled_glue_style_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"line 1: .*no label column"):
        read_labeled_tsv(write(tmp_path / "t.tsv", "index\tsentence\n0\ta film\n"))


def test_label_unknown_to_training_names_file_and_line(tmp_path):
    train = write(tmp_path / "train.tsv", "a\tpos\nb\tneg\n")
    valid = write(tmp_path / "valid.tsv", "a\tpos\nc\tneutral\n")
    with pytest.raises(ValueError, match=r"valid\.tsv, line 2: label 'neutral' does not occur"):
        load_tsv_classification(train, valid=valid)


def test_valid_fraction_holds_out_train_examples_and_batches_pad(tmp_path):
    lines = "".join(f"{'w ' * (1 + i % 7)}\t{i % 2}\n" for i in range(50))
    data = load_tsv_classification(write(tmp_path / "t.tsv", lines), valid_fraction=0.2, max_len=4)
    assert len(data.train) == 40 and len(data.valid) == 10
    assert data.notes and "longer than 4" in data.notes[0]
    seen = []
    for batch in data.train.batches(8, shuffle=True, seed=0):
        assert batch["x"].shape[1] <= 4 and batch["mask"].shape == batch["x"].shape
        assert (batch["mask"] == (batch["x"] != 0)).all()
        seen += batch["rows"].tolist()
    assert sorted(seen) == list(range(40))


@needs_data
def test_sst2_sentences_and_glue_by_name():
    data = load_sst2()
    assert (len(data.train), len(data.valid), len(data.test)) == (6920, 872, 1821)
    assert data.labels == ["0", "1"]
    assert 0.45 < data.train.labels.mean() < 0.6
    glue = load_sst2("glue")
    assert len(glue.train) == 67349 and len(glue.valid) == 872 and glue.test is None


def test_word_tokenize_writes_raw_text_as_sst2_does():
    from rnnlab.data.labeled import word_tokenize

    assert word_tokenize("a gorgeous, witty film!") == ["a", "gorgeous", ",", "witty", "film", "!"]
    assert word_tokenize("I don't like the film's end...") == ["I", "do", "n't", "like", "the", "film", "'s",
                                                               "end", "..."]
    assert word_tokenize("it 's a mess , do n't go") == ["it", "'s", "a", "mess", ",", "do", "n't", "go"]


def test_read_texts_for_prediction_ignores_labels_and_header(tmp_path):
    from rnnlab.data.labeled import read_texts

    path = write(tmp_path / "p.tsv", "sentence\tlabel\na fine film\t1\n\nso bad\n")
    assert read_texts(path) == (["a fine film", "so bad"], [2, 4])


def test_unicode_line_breaks_inside_a_sentence_keep_its_label(tmp_path):
    # str.splitlines() would cut these lines at U+0085 / U+2028 ("no label column")
    train = write(tmp_path / "u.tsv", "a good\u0085film\tpos\r\na bad\u2028film\tneg\n")
    tokens, labels, numbers = read_labeled_tsv(train)
    assert labels == ["pos", "neg"] and numbers == [1, 2]
    assert tokens == [["a", "good", "film"], ["a", "bad", "film"]]   # inside a line they are spaces
