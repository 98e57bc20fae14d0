"""The seq2seq commands through rnnlab.cli.main with --json: data, train seq2seq, translate, eval."""
import json

import pytest

from rnnlab.cli import main
from rnnlab.data.pairs import read_pairs


def run_json(capsys, argv):
    code = main([*argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


def test_data_writes_seeded_tsv(tmp_path, capsys):
    path = tmp_path / "dates.tsv"
    code, result = run_json(capsys, ["data", "dates", "--n", "25", "--seed", "3", "--out", str(path)])
    assert code == 0 and result["n"] == 25 and result["task"] == "dates"
    pairs = read_pairs(path)
    assert len(pairs) == 25 and pairs[0] == (result["first"]["source"], result["first"]["target"])
    code, again = run_json(capsys, ["data", "dates", "--n", "25", "--seed", "3", "--out", str(tmp_path / "b.tsv")])
    assert read_pairs(tmp_path / "b.tsv") == pairs
    code = main(["data", "addition", "--n", "3", "--seed", "0"])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(lines) == 3
    a, b = lines[0].split("\t")[0].split("+")
    assert lines[0].split("\t")[1] == str(int(a) + int(b))


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One tiny attention run shared by the tests below (train, translate, eval)."""
    folder = tmp_path_factory.mktemp("s2s")
    run_dir = folder / "run"
    code = main(["train", "seq2seq", "--generated", "dates", "--n", "240", "--attention", "bahdanau",
                 "--cell", "gru", "--hidden", "16", "--emb", "8", "--epochs", "2", "--batch", "32",
                 "--out", str(run_dir), "--no-progress", "--json"])
    return code, run_dir, folder


def test_train_seq2seq_json_and_run_dir(trained_run, capsys):
    code, run_dir, _ = trained_run
    assert code == 0
    for name in ("config.json", "best.npz", "last.npz", "metrics.jsonl"):
        assert (run_dir / name).exists(), name
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    assert rows[1]["train_loss"] < rows[0]["train_loss"]
    config = json.loads((run_dir / "config.json").read_text())
    assert config["task"] == "seq2seq" and config["attention"] == "bahdanau"


def test_train_prints_figures_as_json(tmp_path, capsys):
    code, result = run_json(capsys, ["train", "seq2seq", "--generated", "addition", "--n", "120", "--hidden", "8",
                                     "--emb", "4", "--epochs", "1", "--reverse", "--peeky", "--no-progress",
                                     "--out", str(tmp_path / "add")])
    assert code == 0
    for key in ("exact_match", "token_accuracy", "bleu", "loss", "epochs", "wall_s"):
        assert key in result
    assert 0.0 <= result["exact_match"] <= 1.0 and result["epochs"] == 1


def test_translate_prints_outputs_and_saves_heatmap(trained_run, capsys):
    _, run_dir, folder = trained_run
    png = folder / "attention.png"
    code, result = run_json(capsys, ["translate", str(run_dir), "september 27, 1994", "9/27/94",
                                     "--beam", "3", "--plot", str(png)])
    assert code == 0
    assert [t["source"] for t in result["translations"]] == ["september 27, 1994", "9/27/94"]
    assert all(isinstance(t["translation"], str) for t in result["translations"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_on_pairs_file(trained_run, tmp_path, capsys):
    _, run_dir, _ = trained_run
    pairs = tmp_path / "test.tsv"
    main(["data", "dates", "--n", "30", "--seed", "9", "--out", str(pairs)])
    capsys.readouterr()
    code, greedy = run_json(capsys, ["eval", str(run_dir), "--pairs", str(pairs)])
    assert code == 0 and greedy["n"] == 30
    for key in ("exact_match", "token_accuracy", "bleu", "loss"):
        assert key in greedy
    code, own = run_json(capsys, ["eval", str(run_dir), "--beam", "2"])
    assert code == 0 and own["beam"] == 2 and own["n"] == 24  # the run's own test split (10%)


def test_errors_name_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"\xff\xfe\x00x\n")
    code, result = run_json(capsys, ["train", "seq2seq", "--pairs", str(bad), "--out", str(tmp_path / "r")])
    assert code == 2 and "bad.tsv" in result["error"]
    code, result = run_json(capsys, ["translate", str(tmp_path / "nothing"), "x"])
    assert code == 2 and "nothing" in result["error"]


def test_eval_refuses_text_on_a_seq2seq_run(trained_run, tmp_path, capsys):
    """`eval RUN --text F` on a seq2seq run is refused, not ignored (exit 2, one line)."""
    _, run_dir, _ = trained_run
    text = tmp_path / "t.txt"
    text.write_text("some text\n", encoding="utf-8")
    assert main(["eval", str(run_dir), "--text", str(text)]) == 2
    err = capsys.readouterr().err
    assert "seq2seq run" in err and "--text" in err and err.count("\n") == 1


@pytest.mark.slow
def test_demo_runs_end_to_end_small(tmp_path, capsys):
    """`rnnlab demo` on a small setting (the real one is measured in the README): JSON with the
    figures, translations printed, a heatmap PNG written."""
    out = tmp_path / "demo"
    code, result = run_json(capsys, ["demo", "--n", "300", "--epochs", "1", "--out", str(out), "--no-progress"])
    assert code == 0
    assert 0.0 <= result["exact_match"] <= 1.0 and result["wall_s"] > 0 and result["blas_threads"] == 1
    assert len(result["translations"]) == 5
    assert (out / "attention.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "run" / "best.npz").exists()


@pytest.mark.slow   # seconds: a real training or a process under a memory cap
def test_the_books_file_trains_and_the_report_fits_the_task(tmp_path, capsys):
    """A file in Deep Learning from Scratch 2's format (written by `rnnlab data --format book`)
    trains without --sep; the log says how it was read; budget mode names the budget, not epoch
    1/1000000; one-word answers get no BLEU (it would be 0) but a character accuracy."""
    book = tmp_path / "addition.txt"
    assert main(["data", "addition", "--n", "200", "--seed", "2", "--format", "book", "--out", str(book)]) == 0
    assert book.read_text(encoding="utf-8").split("\n")[0].index("_") == 7      # the book's fixed width
    code = main(["train", "seq2seq", "--pairs", str(book), "--hidden", "8", "--emb", "4", "--batch", "64",
                 "--max-minutes", "0.05", "--no-progress", "--json", "--out", str(tmp_path / "run")])
    captured = capsys.readouterr()
    result = json.loads(captured.out.strip().splitlines()[-1])
    assert code == 0 and "split at its first '_'" in captured.err
    assert "of 0.05 min:" in captured.err and "/1000000" not in captured.err
    assert result["bleu"] is None and result["token_accuracy"] is not None
    assert "character accuracy" in captured.out and "no BLEU (most targets are under 4 words" in captured.out
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["sep"] is None and config["lr_schedule"] == "plateau" and config["patience"] == 3


def test_defaults_train_until_the_loss_stops_falling_and_epochs_mean_exactly_that(tmp_path):
    from rnnlab.cli import build_parser
    from rnnlab.cli.train_seq2seq import config_from_args

    parser = build_parser()
    default = config_from_args(parser.parse_args(["train", "seq2seq", "--pairs", "p.tsv"]))
    assert (default.epochs, default.patience, default.lr_schedule, default.attention, default.bidirectional) == \
        (40, 3, "plateau", "luong", True)
    one_way = parser.parse_args(["train", "seq2seq", "--pairs", "p", "--no-bidirectional"])
    assert not config_from_args(one_way).bidirectional
    exact = config_from_args(parser.parse_args(["train", "seq2seq", "--pairs", "p.tsv", "--epochs", "5"]))
    assert (exact.epochs, exact.patience) == (5, None)
    tab = config_from_args(parser.parse_args(["train", "seq2seq", "--pairs", "p.tsv", "--sep", "tab"]))
    assert tab.sep == "\t"
