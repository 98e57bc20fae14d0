"""The CLI's validation layer (cli/args.py) and main()'s exit statuses: a user's mistake is one
line and exit 2, a bug keeps its traceback, a closed pipe ends quietly."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlab.cli import build_parser, exit_status, main
from rnnlab.cli.args import RULES, UserError, numeric_actions

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("argv, flag", [
    (["train", "seq2seq", "--batch", "0"], "--batch"),
    (["train", "lm", "--batch", "0"], "--batch"),
    (["train", "seq2seq", "--epochs", "0"], "--epochs"),
    (["train", "lm", "--epochs", "0"], "--epochs"),
    (["train", "lm", "--clip", "-1"], "--clip"),
    (["train", "seq2seq", "--clip", "-1"], "--clip"),
    (["train", "lm", "--limit", "-5"], "--limit"),
    (["train", "seq2seq", "--limit", "-5"], "--limit"),
    (["train", "lm", "--emb", "-4"], "--emb"),
    (["train", "lm", "--lr", "inf"], "--lr"),
    (["train", "seq2seq", "--dropout", "1.5"], "--dropout"),
    (["train", "lm", "--split", "0.5,0.6,0.1"], "--split"),
    (["train", "seq2seq", "--split", "0.5,0.6,0.1"], "--split"),
    (["eval", "RUN", "--batch", "0"], "--batch"),
    (["sample", "RUN", "--temperature", "nan"], "--temperature"),
    (["sample", "RUN", "--length", "-1"], "--length"),
    (["translate", "RUN", "x", "--beam", "0"], "--beam"),
    (["data", "dates", "--n", "0"], "--n"),
    (["demo", "--epochs", "0"], "--epochs"),
    (["bench", "--steps", "0"], "--steps"),
])
def test_a_flag_out_of_range_exits_2_with_one_line_naming_it(argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.count("\n") == 1 and f"argument {flag}" in err and "Traceback" not in err


def test_every_numeric_flag_of_every_command_has_a_rule():
    parser = build_parser()
    unruled = [(p.prog, a.option_strings) for p, a in numeric_actions(parser) if a.dest not in RULES]
    assert not unruled
    for p, action in numeric_actions(parser):
        assert action.type.rule is RULES[action.dest][1], (p.prog, action.dest)


@pytest.mark.parametrize("task", ["lm", "seq2seq"])
def test_the_same_split_rule_for_every_task(task, capsys):
    parser = build_parser()
    assert parser.parse_args(["train", task, "--split", "0.8,0.1,0.1"]).split == (0.8, 0.1, 0.1)
    for bad in ("0.5,0.6,0.1", "1,0", "a,b,c", "-0.1,0.6,0.5", "nan,0.5,0.5"):
        with pytest.raises(SystemExit):
            parser.parse_args(["train", task, "--split", bad])
        assert "argument --split: " in capsys.readouterr().err


def test_user_errors_are_2_bugs_keep_their_traceback():
    assert exit_status(UserError("bad")) == 2
    assert exit_status(FileNotFoundError("x")) == 2
    assert exit_status(OSError(28, "No space left on device")) == 1
    assert exit_status(KeyError("x")) is None and exit_status(ZeroDivisionError()) is None
    try:
        import numpy as np

        np.zeros(3).reshape(4)  # a ValueError raised by NumPy, not by rnnlab: a bug
    except ValueError as err:
        assert exit_status(err) is None


def test_a_bug_shows_its_traceback(monkeypatch):
    from rnnlab.cli import data

    def broken(*args, **kwargs):
        return {}["missing"]

    monkeypatch.setitem(data.generated.GENERATORS, "dates", broken)
    with pytest.raises(KeyError):
        main(["data", "dates", "--n", "3"])


def test_a_library_refusal_is_one_line_exit_2(capsys):
    assert main(["train", "seq2seq", "--epochs", "1"]) == 2  # neither --pairs nor --generated
    err = capsys.readouterr().err
    assert err.startswith("rnnlab train seq2seq: error: give --pairs") and err.count("\n") == 1


def test_data_into_a_closed_pipe_ends_quietly():
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    code = ("import sys; from rnnlab.cli import main; sys.exit(main(['data', 'dates', '--n', '20000']))")
    proc = subprocess.run(f"{sys.executable} -c \"{code}\" | head -1", shell=True, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout.count("\n") == 1 and "\t" in proc.stdout
    assert proc.stderr == "", proc.stderr
