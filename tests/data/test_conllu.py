"""CoNLL-U reading (UPOS), tagging data encoding, the real UD English EWT files."""
import os
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data.conllu import load_tagging, load_ud_english_ewt, read_conllu, tag_arrays

DATA = os.environ.get("RNNLAB_DATA")
needs_data = pytest.mark.skipif(not DATA or not Path(DATA, "ud-english-ewt").is_dir(),
                                reason="RNNLAB_DATA does not point at the shared datasets (ud-english-ewt/)")


def tok(i, form, upos):
    return f"{i}\t{form}\t_\t{upos}\t_\t_\t0\t_\t_\t_\n"


SENTS = ("# sent_id = 1\n# text = I don't run.\n" + tok(1, "I", "PRON") + "2-3\tdon't\t_\t_\t_\t_\t_\t_\t_\t_\n"
         + tok(2, "do", "AUX") + tok(3, "n't", "PART") + tok(4, "run", "VERB") + "4.1\tran\t_\tVERB\t_\t_\t_\t_\t_\t_\n"
         + tok(5, ".", "PUNCT") + "\n" + tok(1, "Dogs", "NOUN") + tok(2, "run", "VERB") + "\n")


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_words_and_upos_skipping_multiword_tokens_and_empty_nodes(tmp_path):
    sents = read_conllu(write(tmp_path / "a.conllu", SENTS))
    assert [s.words for s in sents] == [["I", "do", "n't", "run", "."], ["Dogs", "run"]]
    assert sents[0].tags == ["PRON", "AUX", "PART", "VERB", "PUNCT"]
    assert sents[0].line == 3 and sents[1].line == 11


@pytest.mark.parametrize("text, message", [
    (tok(1, "a", "DET") + "2\tb\tNOUN\n", r"line 2: expected 10 tab-separated fields"),
    (tok(1, "a", "DET") + tok(3, "b", "NOUN"), r"line 2: word ID 3 out of sequence"),
    (tok(1, "a", "DET") + tok("x", "b", "NOUN"), r"line 2: the ID field 'x'"),
    (tok(1, "a", "_"), r"line 1: the FORM or UPOS field is empty"),
])
def test_broken_lines_name_file_and_line(tmp_path, text, message):
    with pytest.raises(ValueError, match=r"b\.conllu, " + message):
        read_conllu(write(tmp_path / "b.conllu", text))


def test_encoding_rare_words_unknown_chars_kept_unseen_flags(tmp_path):
    train = write(tmp_path / "train.conllu", SENTS)
    test = write(tmp_path / "test.conllu", tok(1, "Cats", "NOUN") + tok(2, "RUN", "VERB") + "\n")
    data = load_tagging(train, test=test, min_freq=2)
    assert data.tags == ["AUX", "NOUN", "PART", "PRON", "PUNCT", "VERB"]
    assert "run" in data.word_vocab and "dogs" not in data.word_vocab     # seen once: <unk>
    test_split = data.test
    assert test_split.words[0] == [data.word_vocab.unk_id, data.word_vocab.lookup("run")]
    assert test_split.unseen[0] == [True, False]                            # lowercased forms compare
    assert test_split.chars[0][1] == data.char_vocab.encode(list("RUN"))   # characters keep their case
    gold, unseen = tag_arrays(test_split)
    assert gold.tolist() == [1, 5] and unseen.tolist() == [True, False]
    batch = next(data.train.batches(2))
    assert batch["chars"].shape[:2] == batch["words"].shape == batch["tags"].shape
    assert batch["mask"].sum() == 7


def test_tag_unknown_to_training_is_refused(tmp_path):
    train = write(tmp_path / "train.conllu", SENTS)
    test = write(tmp_path / "test.conllu", tok(1, "wow", "INTJ") + "\n")
    with pytest.raises(ValueError, match=r"test\.conllu: the sentence at line 1 has tag 'INTJ'"):
        load_tagging(train, test=test)


@pytest.mark.slow
@needs_data
def test_ud_english_ewt():
    data = load_ud_english_ewt()
    assert (len(data.train), len(data.valid), len(data.test)) == (12544, 2001, 2077)
    assert len(data.tags) == 17 and "PROPN" in data.tags
    gold, unseen = tag_arrays(data.test)
    assert gold.size == 25094
    assert 0.03 < unseen.mean() < 0.15


def test_a_unicode_line_separator_in_a_form_stays_in_its_word(tmp_path):
    sents = read_conllu(write(tmp_path / "u.conllu", tok(1, "a\u2028b", "X") + tok(2, "c", "NOUN") + "\n"))
    assert [s.words for s in sents] == [["a\u2028b", "c"]] and sents[0].tags == ["X", "NOUN"]
