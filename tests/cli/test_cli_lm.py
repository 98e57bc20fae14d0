"""`rnnlab train lm`, `rnnlab eval`, `rnnlab sample`: --json output and errors."""
import json
import math

import pytest

from rnnlab.cli import build_parser, main
from rnnlab.cli.train_lm import config_from_args


def _last_json(capsys):
    out = capsys.readouterr().out.strip().splitlines()
    return json.loads(out[-1])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "poem.txt"
    lines = ["roses are red", "violets are blue", "sugar is sweet", "and so are you"]
    path.write_text("\n".join(lines * 12) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run_dir(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "poem"
    argv = ["train", "lm", "--text", str(corpus), "--level", "char", "--hidden", "16", "--emb", "8",
            "--layers", "1", "--bptt", "8", "--batch", "4", "--epochs", "2", "--optimizer", "adam", "--lr", "0.02",
            "--seed", "1", "--out", str(out), "--no-progress", "--json"]
    assert main(argv) == 0
    return out


def test_train_prints_the_final_metrics_as_json(corpus, tmp_path, capsys):
    out = tmp_path / "again"
    argv = ["train", "lm", "--text", str(corpus), "--level", "char",
            "--hidden", "8", "--layers", "1", "--bptt", "8", "--batch", "4", "--epochs", "1", "--cell", "gru",
            "--tie-weights", "--seed", "2", "--out", str(out), "--no-progress", "--json"]
    assert main(argv) == 0
    result = _last_json(capsys)
    for key in ("perplexity", "loss", "tokens", "bits_per_char", "epochs", "wall_s"):
        assert key in result, key
    assert result["epochs"] == 1 and result["tokens"] > 0
    assert math.isclose(result["perplexity"], math.exp(result["loss"]))
    assert json.loads((out / "config.json").read_text())["cell"] == "gru"


def test_eval_split_and_text_file(run_dir, corpus, capsys):
    assert main(["eval", str(run_dir), "--split", "valid", "--no-progress", "--json"]) == 0
    valid = _last_json(capsys)
    assert valid["split"] == "valid" and set(valid) >= {"perplexity", "loss", "tokens", "bits_per_char"}
    assert valid["perplexity"] < 20  # 20-odd distinct characters, a trained model does far better than chance
    assert main(["eval", str(run_dir), "--text", str(corpus), "--json"]) == 0
    on_text = _last_json(capsys)
    assert on_text["tokens"] == len(corpus.read_text(encoding="utf-8")) - 1


def test_sample_is_deterministic_and_starts_with_the_prime(run_dir, capsys):
    argv = ["sample", str(run_dir), "--prime", "roses", "--length", "40", "--temperature", "0.8",
            "--top-k", "5", "--seed", "3", "--json"]
    assert main(argv) == 0
    first = _last_json(capsys)
    assert main(argv) == 0
    assert _last_json(capsys) == first
    assert first["text"].startswith("roses") and len(first["text"]) == 5 + 40


def test_resume_of_a_finished_run_reports_the_same_figures(run_dir, capsys):
    assert main(["eval", str(run_dir), "--split", "test", "--json"]) == 0
    test = _last_json(capsys)
    assert main(["train", "lm", "--out", str(run_dir), "--resume", "--no-progress", "--json"]) == 0
    resumed = _last_json(capsys)
    assert resumed["perplexity"] == pytest.approx(test["perplexity"], rel=1e-12)


def test_errors_are_one_json_line_and_exit_code_2(tmp_path, capsys):
    assert main(["eval", str(tmp_path), "--json"]) == 2
    assert "config.json" in _last_json(capsys)["error"]
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["train", "lm", "--text", str(empty), "--out", str(tmp_path / "r"), "--json"]) == 2
    assert "empty.txt" in _last_json(capsys)["error"]


def test_eval_of_a_language_model_rejects_seq2seq_flags(run_dir, capsys):
    assert main(["eval", str(run_dir), "--beam", "3", "--json"]) == 2
    assert "language model" in _last_json(capsys)["error"]


def test_flags_override_the_preset():
    args = build_parser().parse_args(["train", "lm", "--preset", "zaremba-medium", "--epochs", "3",
                                      "--clip", "0", "--tie-weights"])
    config = config_from_args(args)
    assert (config.hidden, config.dropout, config.epochs, config.tie_weights) == (650, 0.5, 3, True)
    assert not config.clip
