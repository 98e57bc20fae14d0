"""Issue 13 through the CLI: defaults in --help, mixed token levels from one command,
translate from a file and stdin, reports that name their checkpoint, quiet stderr off a terminal."""
import io
import json
import warnings

import pytest

from rnnlab import plots
from rnnlab.cli import build_parser, main
from rnnlab.cli.train_lm import config_from_args as lm_config
from rnnlab.cli.train_seq2seq import config_from_args as s2s_config
from rnnlab.train.config import BUDGET_PATIENCE, UNTIL_BUDGET_EPOCHS

# a tiny Korean-English file in the Tatoeba format (English<TAB>Korean<TAB>attribution), as
# manythings.org ships it; --swap reads Korean as the source
KO_EN = [("I'm hungry.", "배고파요."), ("I'm tired.", "피곤해요."), ("Tom is here.", "톰이 여기 있어요."),
         ("It's cold.", "추워요."), ("I'm happy.", "행복해요."), ("Tom is tired.", "톰은 피곤해요."),
         ("It's hot.", "더워요."), ("I'm busy.", "바빠요."), ("Tom is busy.", "톰은 바빠요."),
         ("I'm sorry.", "미안해요."), ("Tom is happy.", "톰은 행복해요."), ("It's late.", "늦었어요.")]


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_help_states_the_defaults():
    parser = build_parser()
    lm = parser.parse_args(["train", "lm"])
    assert lm.lr is None            # None: the optimizer's own default
    text = _help(parser, ["train", "lm"])
    for words in ("sgd 1.0, adam/adamw 2e-3", "sgd 0.5, adam/adamw 1", "until the budget", "default under sgd",
                  "adam at character level"):
        assert words in text, words
    text = _help(parser, ["train", "seq2seq"])
    for words in ("default gru", "default general", "2 x source tokens + 10", "--src-level", "until the budget"):
        assert words in text, words


def _help(parser, argv):
    import contextlib

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        parser.parse_args([*argv, "--help"])
    return " ".join(out.getvalue().split())


def test_adam_flag_without_lr_and_budget_without_epochs_from_the_command_line():
    parser = build_parser()
    config = lm_config(parser.parse_args(["train", "lm", "--optimizer", "adam"]))
    assert config.lr == pytest.approx(2e-3) and config.lr_decay == 1.0
    config = lm_config(parser.parse_args(["train", "lm", "--max-minutes", "3"]))
    assert config.epochs == UNTIL_BUDGET_EPOCHS and config.patience == BUDGET_PATIENCE
    config = lm_config(parser.parse_args(["train", "lm", "--max-minutes", "3", "--epochs", "2"]))
    assert config.epochs == 2 and config.patience is None
    config = lm_config(parser.parse_args(["train", "lm", "--mean-over-time"]))
    assert config.sum_over_time is False and lm_config(parser.parse_args(["train", "lm"])).sum_over_time
    s2s = s2s_config(parser.parse_args(["train", "seq2seq", "--generated", "dates", "--max-minutes", "3"]))
    assert s2s.epochs == UNTIL_BUDGET_EPOCHS and s2s.patience == BUDGET_PATIENCE
    s2s = s2s_config(parser.parse_args(["train", "seq2seq", "--pairs", "x.tsv", "--attention", "luong"]))
    assert (s2s.cell, s2s.score, s2s.hidden, s2s.emb, s2s.max_decode_len) == ("gru", "general", 128, 32, None)


@pytest.fixture(scope="module")
def ko_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ko")
    pairs = folder / "kor.txt"
    pairs.write_text("".join(f"{en}\t{ko}\tCC-BY 2.0 (France) Attribution: tatoeba.org\n" for en, ko in KO_EN * 3),
                     encoding="utf-8")
    run_dir = folder / "run"
    code = main(["train", "seq2seq", "--pairs", str(pairs), "--swap", "--src-level", "char", "--tgt-level", "word",
                 "--attention", "luong", "--hidden", "16", "--emb", "8", "--epochs", "2", "--split", "0.8,0.2,0",
                 "--out", str(run_dir), "--no-progress", "--json"])
    return code, run_dir, folder


def test_korean_chars_to_english_words_from_one_command(ko_run, capsys):
    code, run_dir, _ = ko_run
    assert code == 0
    config = json.loads((run_dir / "config.json").read_text())
    assert config["src_level"] == "char" and config["tgt_level"] == "word"
    assert "톰" in config["src_vocab"]["itos"] and "tired" in config["tgt_vocab"]["itos"]
    results = json.loads((run_dir / "results.json").read_text())
    # --split 0.8,0.2,0 leaves no test pairs: the figures are null, not 0.0
    assert results["test_pairs"] == 0 and results["exact_match"] is None and results["bleu"] is None
    assert results["checkpoint"] == "best" and results["checkpoint_epoch"] in (1, 2)


def test_translate_reads_a_file_and_stdin(ko_run, tmp_path, monkeypatch, capsys):
    _, run_dir, _ = ko_run
    sources = tmp_path / "ko.txt"
    sources.write_text("피곤해요.\n\n톰은 바빠요.\n", encoding="utf-8")
    assert main(["translate", str(run_dir), "--file", str(sources), "--json"]) == 0
    from_file = _last_json(capsys)["translations"]
    assert [t["source"] for t in from_file] == ["피곤해요.", "톰은 바빠요."]
    monkeypatch.setattr("sys.stdin", io.StringIO("피곤해요.\n톰은 바빠요.\n"))
    assert main(["translate", str(run_dir), "-", "--json"]) == 0
    assert _last_json(capsys)["translations"] == from_file
    monkeypatch.setattr("sys.stdin", io.StringIO("피곤해요.\n"))
    assert main(["translate", str(run_dir), "--file", "-", "--json"]) == 0
    assert _last_json(capsys)["translations"] == from_file[:1]
    assert main(["translate", str(run_dir), "--file", str(tmp_path / "missing.txt")]) != 0


def test_attention_plot_of_hangul_uses_a_glyph_font_or_warns_once(ko_run, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    _, run_dir, _ = ko_run
    monkeypatch.setattr(plots, "_warned_missing", False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for name in ("a.png", "b.png"):
            assert main(["translate", str(run_dir), "피곤해요.", "--plot", str(tmp_path / name)]) == 0
            assert (tmp_path / name).stat().st_size > 0
    font = plots.glyph_font(["피곤해요"])
    notes = [w for w in caught if "no installed font has glyphs" in str(w.message)]
    if font is None:       # this system has no CJK font: exactly one warning for both plots
        assert len(notes) == 1 and "fonts-noto-cjk" in str(notes[0].message)
    else:                  # it has one: the labels are drawn with it, no warning
        assert not notes and plots._covers(font, set("피곤해요"))


def test_glyph_font_is_none_for_latin_and_warns_once_without_candidates(monkeypatch):
    pytest.importorskip("matplotlib")
    assert plots.glyph_font(["the cat", "sat"]) is None          # the default font has them
    monkeypatch.setattr(plots, "_warned_missing", False)
    with pytest.warns(UserWarning, match="no installed font has glyphs"):
        assert plots.glyph_font(["한국어"], candidates=[]) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert plots.glyph_font(["日本語"], candidates=[]) is None   # once per process


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    text = folder / "poem.txt"
    text.write_text("roses are red\nviolets are blue\nsugar is sweet\nand so are you\n" * 12, encoding="utf-8")
    run_dir = folder / "run"
    assert main(["train", "lm", "--text", str(text), "--level", "char", "--hidden", "8", "--layers", "1",
                 "--bptt", "4", "--batch", "2", "--epochs", "2", "--optimizer", "adam", "--out", str(run_dir),
                 "--json"]) == 0
    return run_dir


def test_eval_names_its_checkpoint_and_writes_no_bars_off_a_terminal(lm_run, capfd):
    capfd.readouterr()
    assert main(["eval", str(lm_run), "--json"]) == 0     # no --no-progress: stderr is not a terminal
    out, err = capfd.readouterr()
    result = json.loads(out.strip().splitlines()[-1])
    assert result["checkpoint"] == "best" and result["checkpoint_metric"] == "valid_loss"
    assert result["checkpoint_epoch"] in (1, 2)
    assert "\r" not in err and "it/s" not in err and "win/s" not in err
    assert main(["eval", str(lm_run), "--checkpoint", "last", "--json"]) == 0
    last = json.loads(capfd.readouterr().out.strip().splitlines()[-1])
    assert last["checkpoint"] == "last" and last["checkpoint_epoch"] == 2 and last["checkpoint_metric"] is None
    rows = [json.loads(line) for line in (lm_run / "metrics.jsonl").read_text().splitlines()]
    best = min(rows, key=lambda r: r["valid_loss"])
    assert result["checkpoint_epoch"] == best["epoch"]


def test_train_names_the_checkpoint_in_its_report(lm_run):
    results = json.loads((lm_run / "results.json").read_text())
    rows = [json.loads(line) for line in (lm_run / "metrics.jsonl").read_text().splitlines()]
    best = min(rows, key=lambda r: r["valid_loss"])
    assert results["checkpoint"] == "best" and results["checkpoint_epoch"] == best["epoch"]
