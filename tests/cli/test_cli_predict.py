"""Issue 29, items 7 to 10, as reproduced: predict / translate / eval in bounded memory on any
input (under a 1 GiB address-space cap in a subprocess), text that is not a file taken as text,
and damaged files or flags refused in one line (exit 2) instead of a traceback or nonsense."""
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnlab.cli import main
from rnnlab.data.memory import budget_batches
from tasks_toy import STEMS, write_conllu, write_feature_captions, write_sentiment

SRC = str(Path(__file__).resolve().parents[2] / "src")
CAP_MIB = 1024
# the command under an address-space cap, printing the peak of what Python and NumPy allocate
CAPPED = ("import resource, sys, tracemalloc; limit = int(sys.argv[1]) * 2**20; "
          "resource.setrlimit(resource.RLIMIT_AS, (limit, limit)); tracemalloc.start(); "
          "from rnnlab.cli import main; code = main(sys.argv[2:]); "
          "print('peak', tracemalloc.get_traced_memory()[1], file=sys.stderr); sys.exit(code)")


def _capped(*argv, timeout=600):
    env = {**os.environ, "PYTHONPATH": SRC, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", CAPPED, str(CAP_MIB), *map(str, argv)], env=env,
                          capture_output=True, text=True, timeout=timeout)
    peaks = [int(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("peak ")]
    return proc, peaks[-1] if peaks else None


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err), err
    assert all(w in err[-1] for w in words), err[-1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny finished runs: a text classifier, the default tagger, a unidirectional tagger whose
    training cut sentences at 4 words, a seq2seq model with attention."""
    folder = tmp_path_factory.mktemp("runs")
    for name, n, seed in (("train.tsv", 80, 0), ("valid.tsv", 20, 1), ("test.tsv", 20, 2)):
        write_sentiment(folder / name, n, seed)
    for name, n, seed in (("train.conllu", 40, 0), ("dev.conllu", 10, 1), ("test.conllu", 10, 2)):
        write_conllu(folder / name, n, seed, STEMS)
    quiet = ["--epochs", "1", "--no-progress"]

    def train(*argv):
        assert main(["train", *map(str, argv), *quiet]) == 0
    train("classify", "--tsv", folder / "train.tsv", "--valid", folder / "valid.tsv", "--test", folder / "test.tsv",
          "--emb", "8", "--hidden", "8", "--out", folder / "clf")
    conllu = ["--conllu", folder / "train.conllu", "--valid", folder / "dev.conllu", "--test", folder / "test.conllu"]
    train("tag", *conllu, "--out", folder / "tag")
    train("tag", *conllu, "--unidirectional", "--max-len", "4", "--emb", "8", "--char-emb", "4", "--char-hidden", "4",
          "--hidden", "8", "--out", folder / "stream")
    for name, n, seed in (("train.ts", 30, 0), ("test.ts", 10, 1)):
        _write_series(folder / name, n, seed)
    train("classify", "--ts", folder / "train.ts", "--test", folder / "test.ts", "--hidden", "8",
          "--out", folder / "series")
    train("seq2seq", "--generated", "dates", "--n", "60", "--hidden", "8", "--emb", "4", "--attention", "bahdanau",
          "--out", folder / "s2s")
    return {name: str(folder / name) for name in ("clf", "tag", "stream", "series", "s2s")}


def _write_series(path, n: int, seed: int, values=None) -> None:
    """A .ts file of ``n`` two-dimensional series (3 to 8 steps), labels a / b; ``values``: the
    first series' first dimension instead."""
    rng = np.random.default_rng(seed)
    lines = ["@problemName toy", "@timeStamps false", "@missing false", "@univariate false", "@dimensions 2",
             "@equalLength false", "@classLabel true a b", "@data"]
    for i in range(n):
        steps = int(rng.integers(3, 9))
        dims = [rng.normal(size=steps).round(3).tolist() for _ in range(2)]
        if i == 0 and values is not None:
            dims = [list(values), [0.0] * len(values)]
        lines.append(":".join(",".join(map(str, d)) for d in dims) + f":{'ab'[i % 2]}")
    path.write_text("\n".join(lines) + "\n")


# ---- item 8: text or file --------------------------------------------------------------------


def test_a_sentence_longer_than_a_file_name_is_taken_as_text(runs, capsys):
    """It used to fail with "File name too long": every argument was tried as a path first."""
    capsys.readouterr()
    sentence = "the film was good and the plot was fine " * 8     # 320 bytes: over NAME_MAX
    assert main(["predict", runs["clf"], sentence, "--json"]) == 0
    out, err = capsys.readouterr()
    assert [p["input"] for p in json.loads(out.splitlines()[-1])["predictions"]] == [sentence]
    assert "INPUT 1: not a file, taken as text (320 characters)" in err


def test_dash_reads_stdin_and_each_input_says_what_it_was_taken_as(runs, tmp_path, capsys, monkeypatch):
    (tmp_path / "texts.txt").write_text("it was dull\n\nthe film was superb\n")
    monkeypatch.setattr(sys, "stdin", io.StringIO("a lovely film\nan awful plot\n"))
    capsys.readouterr()
    assert main(["predict", runs["clf"], "-", str(tmp_path / "texts.txt"), "good", "--json"]) == 0
    out, err = capsys.readouterr()
    inputs = [p["input"] for p in json.loads(out.splitlines()[-1])["predictions"]]
    assert inputs == ["a lovely film", "an awful plot", "it was dull", "the film was superb", "good"]
    assert "INPUT 1 '-': 2 line(s) read from stdin" in err
    assert f"INPUT 2: read the file {tmp_path / 'texts.txt'} (2 line(s))" in err
    assert "INPUT 3: not a file, taken as text" in err


# ---- item 7: memory bounded whatever the input ---------------------------------------------------


@pytest.mark.slow   # seconds: a real training or a process under a memory cap
def test_a_file_with_one_long_line_is_predicted_under_a_memory_cap(runs, tmp_path):
    """1,500 short lines and one of 5,000 words were padded into one batch: 1.5 GiB tried at
    hidden 8, a MemoryError under the cap. Now: batches within a budget, the long line cut to
    the run's max_len (1000) as training cuts, and said so."""
    lines = ["the film was good and fine"] * 1500
    lines.insert(700, " ".join(["good"] * 5000))
    (tmp_path / "big.txt").write_text("\n".join(lines) + "\n")
    proc, peak = _capped("predict", runs["clf"], tmp_path / "big.txt")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.splitlines()) == 1501 and peak < 2**30
    assert f"1 input(s) longer than the run's max_len of 1000 words cut to it, as training cut its data: " \
           f"{tmp_path / 'big.txt'}, line 701" in proc.stderr


@pytest.mark.slow   # seconds: a real training or a process under a memory cap
def test_the_default_tagger_tags_a_60000_word_line_under_a_memory_cap(runs, tmp_path):
    """One sentence was one batch: 60,000 words went over the 1 GiB cap (300,000 passed 4 GB).
    Now it is tagged in pieces of the run's max_len (250), every word getting its tag."""
    (tmp_path / "line.txt").write_text(" ".join(["the actly rotion"] * 20000) + "\n")
    proc, peak = _capped("predict", runs["tag"], tmp_path / "line.txt")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.split()) == 60000 and peak < 2**30
    assert "1 sentence(s) longer than the run's max_len of 250 words tagged in pieces of 250" in proc.stderr


def test_a_unidirectional_tagger_carries_its_state_across_the_pieces(runs, capsys):
    """Its pieces give the tags of each whole sentence run at once (the tagger streams), also
    in batches of sentences of different lengths."""
    from rnnlab.data.conllu import TaggingData
    from rnnlab.data.vocab import Vocab
    from rnnlab.train.supervised import host_softmax, load_run
    from rnnlab.train.tag import stream_and_whole, tag_probabilities

    sentences = ["the actly rotion passful the coldly bloomed darkion the warmful",      # 10 words, cap 4
                 "the calmly acted", "the deepion rotted the passly kindful neated", "the mildion"]
    _, tagged = tag_probabilities(runs["stream"], sentences)
    assert "2 sentence(s) longer than the run's max_len of 4 words tagged in pieces of 4 (the state carried " \
           "across" in capsys.readouterr().err
    stored, model = load_run(runs["stream"])
    data = TaggingData(None, None, None, Vocab.from_json(stored["word_vocab"]),
                       Vocab.from_json(stored["char_vocab"]), stored["tags"], True, 20)
    for sentence, (words, probs) in zip(sentences, tagged):
        assert words == sentence.split()
        whole, _ = stream_and_whole(model, *data.encode_words(words))
        np.testing.assert_allclose(probs, host_softmax(whole), atol=1e-6)


def test_budget_batches_keep_every_batch_within_the_budget_and_refuse_one_input_too_large():
    lengths = [3, 50, 7, 7, 1, 400, 20]
    batches = budget_batches(lengths, per_step=10, what="one input", hint="give shorter inputs", budget=1000,
                             max_rows=3, available=1 << 40)
    assert sorted(i for rows in batches for i in rows) == list(range(len(lengths)))
    for rows in batches:
        longest = max(lengths[i] for i in rows)
        assert len(rows) <= 3 and (len(rows) == 1 or len(rows) * longest * 10 <= 1000)
    assert [list(rows) for rows in batches][-1] == [5]      # 400 steps: over the budget alone, a batch of its own
    with pytest.raises(MemoryError, match=r"one input of 400 steps needs about .*give shorter inputs"):
        budget_batches(lengths, per_step=10, what="one input", hint="give shorter inputs", available=3999)


def test_translate_cuts_a_source_longer_than_the_training_lines(runs, capsys, monkeypatch):
    from rnnlab.data.pairs import pair_batch_bytes
    from rnnlab.train import seq2seq
    from rnnlab.train.seq2seq import Translator

    translator = Translator(runs["s2s"])
    capsys.readouterr()
    results = translator(["may 3 1990", "x" * 5000])
    assert len(results) == 2 and len(results[1]["source_tokens"]) == 1000
    assert "1 text(s) longer than the run's max_line_chars of 1000 characters cut to it: text 2" in \
        capsys.readouterr().err
    # rows of a decoding batch: as many as the budget holds of the longest source and its output limit
    c = translator.config
    limit = translator.decode_cap + 1     # the longest output + <eos>: the run's cap (2 x 1000 + 10 is more)
    one = pair_batch_bytes(1, 1000, limit, c.hidden, c.emb, c.layers, len(translator.tgt_vocab),
                           2 if c.bidirectional else 1)   # (a bidirectional encoder by default)
    monkeypatch.setattr(seq2seq, "PREDICTION_BUDGET", 10 * one)
    assert translator.batch_size(translator.data([("x" * 1000, ""), ("x", "")])) == 10


# ---- item 9: one line, not a traceback ----------------------------------------------------------


REMOVED = object()


def _damaged_copy(run_dir, folder, key, value) -> Path:
    """A copy of a run whose config.json holds ``value`` under ``key`` (REMOVED: no ``key``)."""
    run = folder / "run"
    run.mkdir()
    for path in Path(run_dir).iterdir():
        if path.suffix in (".json", ".npz"):
            (run / path.name).write_bytes(path.read_bytes())
    config = json.loads((run / "config.json").read_text())
    if value is REMOVED:
        del config[key]
    else:
        config[key] = value
    (run / "config.json").write_text(json.dumps(config))
    return run


@pytest.mark.parametrize("key, value, message", [
    ("labels", ["neg"], "'labels' must be a list of the model's 2 names, got ['neg']"),
    ("labels", None, "'labels' must be a list of the model's 2 names, got None"),
    ("vocab", REMOVED, "'vocab' must be a vocabulary"),
])
def test_predict_refuses_a_damaged_classify_config_in_one_line(runs, tmp_path, capsys, key, value, message):
    """Short or null labels gave IndexError, a removed vocab KeyError."""
    run = _damaged_copy(runs["clf"], tmp_path, key, value)
    assert main(["predict", str(run), "a good film"]) == 2
    _one_line_error(capsys, f"{run / 'config.json'}: {message}", "damaged")


@pytest.mark.parametrize("key, value, message", [
    ("std", [1.0, 0.0], "'std' must be 2 finite numbers, all > 0, got [1.0, 0.0]"),
    ("mean", [0.5], "'mean' must be 2 finite numbers, got [0.5]"),
])
def test_predict_refuses_damaged_series_statistics_in_one_line(runs, tmp_path, capsys, key, value, message):
    """A std of 0 gave inf inputs and NaN probabilities; a short mean, a shape error."""
    run = _damaged_copy(runs["series"], tmp_path, key, value)
    _write_series(tmp_path / "new.ts", 3, 5)
    assert main(["predict", str(run), str(tmp_path / "new.ts")]) == 2
    _one_line_error(capsys, f"{run / 'config.json'}: {message}")


def test_predict_refuses_a_series_value_beyond_float32_naming_its_line(runs, tmp_path, capsys):
    """1e39 standardized is inf in float32: the classifier answered NaN probabilities."""
    _write_series(tmp_path / "new.ts", 3, 5, values=[0.1, 1e39, 0.2])
    assert main(["predict", runs["series"], str(tmp_path / "new.ts")]) == 2
    _one_line_error(capsys, f"{tmp_path / 'new.ts'}, line 9, step 2, feature 1: 1e+39 is beyond the float32 range")


def test_caption_features_in_an_npz_archive_are_refused_in_one_line(tmp_path, capsys):
    """An .npz (np.savez) was an AttributeError: 'NpzFile' object has no attribute 'ndim'."""
    X, captions = write_feature_captions(tmp_path, 40, 0)
    np.savez(tmp_path / "X.npz", features=np.load(X))
    code = main(["train", "caption", "--features", str(tmp_path / "X.npz"), "--captions", str(captions),
                 "--hidden", "8", "--emb", "4", "--epochs", "1", "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2
    _one_line_error(capsys, "X.npz: a .npz archive, not one array")
    assert not (tmp_path / "run").exists()


# ---- item 10: no silent nonsense ----------------------------------------------------------------


@pytest.fixture
def lm_run(tmp_path, word_text):
    run = tmp_path / "lm"
    assert main(["train", "lm", "--text", str(word_text), "--level", "char", "--hidden", "8", "--emb", "4",
                 "--bptt", "5", "--batch", "2", "--epochs", "1", "--out", str(run), "--no-progress"]) == 0
    return run


def test_export_refuses_a_damaged_vocab_json(lm_run, tmp_path, capsys):
    """It embedded the file's bytes in the ONNX metadata unchecked."""
    (lm_run / "vocab.json").write_text('{"specials": ["<unk>"], "itos": ["<unk>", "a"]}')
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main(["export", str(lm_run), "--out", str(tmp_path / "lm.onnx")])
    assert exit_.value.code == 2
    _one_line_error(capsys, f"{lm_run / 'vocab.json'} holds 2 tokens but the model", "does not belong to this run")
    assert not (tmp_path / "lm.onnx").exists()


def test_eval_of_a_language_model_checks_its_window_against_the_memory(lm_run, capsys, monkeypatch):
    from rnnlab.data import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 10_000)
    capsys.readouterr()
    assert main(["eval", str(lm_run), "--batch", "20"]) == 2
    _one_line_error(capsys, "a window of 20 streams of 5 tokens needs about", "lower --batch")
