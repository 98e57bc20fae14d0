"""TagTask on the loop: learns past the majority baseline (unseen words too, from their spelling);
the unidirectional tagger streams word by word to exactly the tags of the whole sentence."""
import json

import numpy as np
import pytest

from rnnlab.data.conllu import load_tagging
from rnnlab.train.tag import TagConfig, TagTask, stream_and_whole, tag_sentences, train_tag
from tasks_toy import STEMS, write_conllu


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("conllu")
    # the test split uses stems never seen in training: its words are all unseen but for "the"
    write_conllu(folder / "train.conllu", 200, 0, STEMS[:18])
    write_conllu(folder / "dev.conllu", 30, 1, STEMS[:18])
    write_conllu(folder / "test.conllu", 40, 2, STEMS[18:])
    return folder


def config(toy, **kw):
    base = dict(conllu=str(toy / "train.conllu"), valid=str(toy / "dev.conllu"), test=str(toy / "test.conllu"),
                emb=12, char_emb=8, char_hidden=12, hidden=16, epochs=6, batch=16, lr=1e-2, dropout=0.0,
                min_freq=1, progress=False)
    return TagConfig(**{**base, **kw})


@pytest.mark.slow
def test_bidirectional_tagger_beats_majority_on_unseen_words(toy, tmp_path):
    result = train_tag(config(toy), tmp_path / "run")
    m = result.metrics
    assert m["majority_baseline"] < 0.5
    assert m["accuracy"] >= m["majority_baseline"] + 0.3
    assert m["unseen_words"] > 0.7 * m["test_words"] and m["unseen_accuracy"] >= m["majority_baseline"] + 0.25
    assert set(m["per_tag"]) == {"DET", "NOUN", "VERB", "ADJ", "ADV"} and "streaming_identical" not in m
    written = json.loads((tmp_path / "run" / "results.json").read_text())   # names its checkpoint (README)
    best = max(result.history, key=lambda row: row["valid_accuracy"])     # the first of equal values
    assert written["checkpoint"] == "best" and written["checkpoint_metric"] == "valid_accuracy"
    assert written["checkpoint_epoch"] == best["epoch"]
    (out,) = tag_sentences(tmp_path / "run", ["the rotion mildly passed"])
    assert out["words"] == ["the", "rotion", "mildly", "passed"] and out["tags"][0] == "DET"
    assert len(out["tags"]) == 4


def test_streaming_gives_exactly_the_tags_of_the_whole_sentence(toy, tmp_path):
    result = train_tag(config(toy, bidirectional=False, epochs=2, stream_check=40), tmp_path / "stream")
    assert result["streaming_identical"] is True and result["streaming_sentences"] == 40
    assert result["streaming_max_logit_diff"] < 1e-4
    model, split = result.model, result.task.data.test
    for i in range(5):
        whole, streamed = stream_and_whole(model, split.words[i], split.chars[i])
        assert whole.shape == streamed.shape == (len(split.words[i]), 5)
        np.testing.assert_array_equal(whole.argmax(-1), streamed.argmax(-1))
        np.testing.assert_allclose(streamed, whole, atol=1e-4)


def test_bidirectional_refuses_to_stream(toy):
    task = TagTask(config(toy), data=load_tagging(toy / "train.conllu", toy / "dev.conllu", toy / "test.conllu"))
    task.setup()
    with pytest.raises(ValueError, match="streaming needs bidirectional=False"):
        task.model.begin_stream()


def test_word_dropout_reads_real_words_as_unk_the_same_way_each_time(toy):
    data = load_tagging(toy / "train.conllu", toy / "dev.conllu", toy / "test.conllu")
    plain = TagTask(config(toy, word_dropout=0.0), data=data)
    dropped = TagTask(config(toy, word_dropout=0.3), data=data)
    unk = data.word_vocab.unk_id
    before, after = plain.epoch_batches(2), dropped.epoch_batches(2)
    changed = real = 0
    for a, b in zip(before, after):
        mask = np.asarray(a["mask"]).astype(bool)
        np.testing.assert_array_equal(np.asarray(b["words"])[~mask], np.asarray(a["words"])[~mask])  # padding kept
        differ = np.asarray(a["words"]) != np.asarray(b["words"])
        assert (np.asarray(b["words"])[differ] == unk).all()
        np.testing.assert_array_equal(np.asarray(a["chars"]), np.asarray(b["chars"]))   # the spelling stays
        changed += int((np.asarray(b["words"])[mask] == unk).sum() - (np.asarray(a["words"])[mask] == unk).sum())
        real += int(mask.sum())
    assert 0.2 < changed / real < 0.35
    # the same epoch drops the same words (a resumed epoch), another epoch others
    again = dropped.epoch_batches(2)
    assert all((np.asarray(x["words"]) == np.asarray(y["words"])).all() for x, y in zip(after, again))

    def unk_rows(batches):   # sentence index -> its word ids as the epoch feeds them
        return {row: tuple(np.asarray(b["words"])[k, :len(data.train.words[row])])
                for b in batches for k, row in enumerate(b["rows"])}
    assert unk_rows(after) != unk_rows(dropped.epoch_batches(3))
    assert unk_rows(before) == unk_rows(plain.epoch_batches(3))   # without word dropout, only the order moves
    with pytest.raises(ValueError, match="word_dropout"):
        TagTask(config(toy, word_dropout=1.0), data=data).build_model()


def test_a_run_from_before_word_dropout_resumes_without_it(toy, tmp_path):
    # tag runs written before word_dropout existed trained without it; today's default (0.25)
    # must not reach them when they resume
    assert TagConfig().word_dropout == 0.25
    train_tag(config(toy, epochs=1, word_dropout=0.0), tmp_path / "run")
    stored = json.loads((tmp_path / "run" / "config.json").read_text())
    del stored["word_dropout"]                            # as an older rnnlab wrote it
    (tmp_path / "run" / "config.json").write_text(json.dumps(stored))
    assert TagConfig.from_run_config(stored).word_dropout == 0.0
    resumed = train_tag(None, tmp_path / "run", resume=True, overrides={"epochs": 2})
    assert resumed.task.config.word_dropout == 0.0
    straight = train_tag(config(toy, epochs=2, word_dropout=0.0), tmp_path / "straight")
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in straight.history]
    # --monitor may name exactly the validation figures the task reports
    assert set(TagConfig.MONITORS) == {key for key in straight.history[-1] if key.startswith("valid_")}
