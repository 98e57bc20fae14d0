"""rnnlab train classify / tag / caption and rnnlab predict through rnnlab.cli.main; bad input
exits with the CLI's user-error status and one line naming the file and line."""
import json

import numpy as np
import pytest

import rnnlab.cli as cli
from rnnlab.cli import main
from tasks_toy import STEMS, write_conllu, write_feature_captions, write_sentiment

# cli.exit_status sorts errors (a user's mistake exits 2); before it, every error exited 1
USER_ERROR = 2 if hasattr(cli, "exit_status") else 1


def run_json(capsys, argv):
    code = main([*argv, "--json", "--no-progress"] if argv[0] == "train" else [*argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


def test_train_classify_resume_and_predict(tmp_path, capsys):
    for name, n, seed in (("train.tsv", 240, 0), ("valid.tsv", 40, 1), ("test.tsv", 80, 2)):
        write_sentiment(tmp_path / name, n, seed)
    run = tmp_path / "run"
    code, result = run_json(capsys, ["train", "classify", "--tsv", str(tmp_path / "train.tsv"), "--valid",
                                     str(tmp_path / "valid.tsv"), "--test", str(tmp_path / "test.tsv"), "--emb", "16",
                                     "--hidden", "16", "--epochs", "2", "--batch", "16", "--lr", "0.01",
                                     "--input-dropout", "0.1", "--lr-decay", "0.5", "--decay-start", "2",
                                     "--out", str(run)])
    assert code == 0 and result["epochs"] == 2 and result["test_n"] == 80
    stored = json.loads((run / "config.json").read_text())
    assert (stored["input_dropout"], stored["lr_decay"], stored["decay_start"]) == (0.1, 0.5, 2)
    code, resumed = run_json(capsys, ["train", "classify", "--out", str(run), "--resume", "--epochs", "4"])
    assert code == 0 and resumed["epochs"] == 4
    lrs = [json.loads(line)["lr"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert lrs == [0.01, 0.01, 0.005, 0.0025]     # lr x 0.5 after each epoch from the 2nd, across the resume
    assert resumed["accuracy"] >= resumed["majority_baseline"] + 0.2
    code, predicted = run_json(capsys, ["predict", str(run), "the film was superb", "it was dull"])
    assert code == 0 and [p["label"] for p in predicted["predictions"]] == ["pos", "neg"]
    (tmp_path / "texts.txt").write_text("the film was superb\n\nit was dull\n")
    main(["predict", str(run), str(tmp_path / "texts.txt")])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == ["pos", "neg"]


def test_train_tag_and_predict(tmp_path, capsys):
    write_conllu(tmp_path / "train.conllu", 120, 0, STEMS)
    write_conllu(tmp_path / "dev.conllu", 20, 1, STEMS)
    write_conllu(tmp_path / "test.conllu", 20, 2, STEMS)
    code, result = run_json(capsys, ["train", "tag", "--conllu", str(tmp_path / "train.conllu"), "--valid",
                                     str(tmp_path / "dev.conllu"), "--test", str(tmp_path / "test.conllu"),
                                     "--unidirectional", "--emb", "8", "--char-emb", "8", "--char-hidden", "8",
                                     "--hidden", "12", "--epochs", "2", "--lr", "0.01", "--out", str(tmp_path / "run")])
    assert code == 0 and result["streaming_identical"] is True and "NOUN" in result["per_tag"]
    code = main(["predict", str(tmp_path / "run"), "the actly rotion"])
    out = capsys.readouterr().out.strip()
    assert code == 0 and out.startswith("the/") and len(out.split()) == 3


def test_train_caption_features(tmp_path, capsys):
    X, captions = write_feature_captions(tmp_path, 150, 0)
    code, result = run_json(capsys, ["train", "caption", "--features", str(X), "--captions", str(captions),
                                     "--hidden", "16", "--emb", "4", "--epochs", "1", "--beam", "2",
                                     "--max-decode-len", "4", "--encoder", "8", "--out", str(tmp_path / "run")])
    assert code == 0 and result["test_n"] == 15 and {"exact_match", "beam_exact_match"} <= set(result)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["encoder"] == 8
    code = main(["predict", str(tmp_path / "run"), "text"])
    assert code == USER_ERROR and "classify and tag runs" in capsys.readouterr().err


def _bad_tsv(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_text("a good film\tpos\nno label column here\n")
    return ["train", "classify", "--tsv", str(path)], str(path), "line 2"


def _bad_label(tmp_path):
    path = tmp_path / "swapped.tsv"
    path.write_text("a good film\tpos\npos\ta bad film\n")
    return ["train", "classify", "--tsv", str(path)], str(path), "line 2"


def _bad_ts(tmp_path):
    train, test = tmp_path / "train.ts", tmp_path / "test.ts"
    train.write_text("@problemName x\n@dimensions two\n@classLabel true a b\n@data\n1,2:3,4:a\n")
    test.write_text(train.read_text())
    return ["train", "classify", "--ts", str(train), "--test", str(test)], str(train), "line 2"


def _bad_conllu(tmp_path):
    path = tmp_path / "bad.conllu"
    path.write_text("1\tthe\tthe\tDET\t_\t_\t0\tdep\t_\t_\n2\tdog\tdog NOUN\n")
    return ["train", "tag", "--conllu", str(path), "--valid", str(path), "--test", str(path)], str(path), "line 2"


def _bad_counts(tmp_path):
    np.save(tmp_path / "X.npy", np.zeros((3, 4)))
    (tmp_path / "captions.txt").write_text("one\ntwo\n")
    return (["train", "caption", "--features", str(tmp_path / "X.npy"), "--captions", str(tmp_path / "captions.txt")],
            str(tmp_path / "captions.txt"), "line 2")


@pytest.mark.parametrize("case", [_bad_tsv, _bad_label, _bad_ts, _bad_conllu, _bad_counts])
def test_bad_input_names_file_and_line(case, tmp_path, capsys):
    argv, file, line = case(tmp_path)
    code = main([*argv, "--no-progress"])
    err = capsys.readouterr().err
    assert code == USER_ERROR
    assert file in err and line in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if "error" in ln]) == 1
