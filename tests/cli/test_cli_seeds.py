"""``rnnlab train classify|tag|caption --seeds S,S --out DIR``: one process per seed, each the
command with ``--seed S --out DIR/seed-S``, then their ensemble; ``--resume`` keeps finished
seeds; a failing seed's error and exit status become the command's."""
import json

import pytest

from rnnlab.cli import main, seeds
from rnnlab.train.ensemble import evaluate_ensemble
from tasks_toy import write_sentiment

USER_ERROR = 2


def classify_argv(tmp_path):
    for name, n, seed in (("train.tsv", 240, 0), ("valid.tsv", 40, 1), ("test.tsv", 80, 2)):
        write_sentiment(tmp_path / name, n, seed)
    return ["train", "classify", "--tsv", str(tmp_path / "train.tsv"), "--valid", str(tmp_path / "valid.tsv"),
            "--test", str(tmp_path / "test.tsv"), "--emb", "16", "--hidden", "16", "--epochs", "2", "--batch", "16",
            "--lr", "0.01"]


def run_json(capsys, argv):
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    return code, json.loads(captured.out.strip().splitlines()[-1]), captured.err


@pytest.mark.slow
def test_each_seed_is_the_command_with_its_seed_and_the_ensemble_is_theirs(tmp_path, capsys):
    argv = classify_argv(tmp_path)
    out = tmp_path / "ens"
    code, result, err = run_json(capsys, [*argv, "--seeds", "3,1", "--out", str(out)])
    assert code == 0, err
    members = [out / "seed-3", out / "seed-1"]
    assert result["runs"] == [str(m) for m in members]
    assert "seed 3: epoch 2/2" in err and "seed 1: epoch 2/2" in err     # each seed's lines, relayed
    # each member is the plain command with --seed S --out DIR/seed-S: the same config as such a run
    code, _, _ = run_json(capsys, [*argv, "--seed", "1", "--out", str(tmp_path / "single"), "--no-progress"])
    assert code == 0
    single = json.loads((tmp_path / "single" / "config.json").read_text())
    for member, seed in zip(members, (3, 1)):
        config = json.loads((member / "config.json").read_text())
        assert config == {**single, "seed": seed}
        stored = json.loads((member / "results.json").read_text())
        figures = next(m for m in result["members"] if m["run"] == str(member))
        assert figures["accuracy"] == stored["accuracy"]
    # the ensemble's figures are evaluate_ensemble's of the two runs, kept in DIR/ensemble.json
    again = evaluate_ensemble([str(m) for m in members])
    assert result["accuracy"] == again["accuracy"] and result["confusion"] == again["confusion"]
    assert json.loads((out / "ensemble.json").read_text()) == result
    assert result["accuracy"] >= 0.8                           # the toy data is learnable
    # --resume keeps finished seeds: nothing is trained again, the figures are the same
    stamps = [(m / "results.json").stat().st_mtime_ns for m in members]
    code, resumed, err = run_json(capsys, [*argv, "--seeds", "3,1", "--out", str(out), "--resume"])
    assert code == 0 and "seed 3: finished run kept" in err and "epoch" not in err
    assert [(m / "results.json").stat().st_mtime_ns for m in members] == stamps
    assert resumed["accuracy"] == result["accuracy"]
    # without --resume or --overwrite the runs already there are refused, by the seeds themselves
    code = main([*argv, "--seeds", "3,1", "--jobs", "1", "--out", str(out)])   # seed 3 first, alone
    assert code == USER_ERROR
    assert "seed 3:" in capsys.readouterr().err


def test_seed_command_replaces_the_parents_own_flags():
    argv = ["train", "tag", "--ud-ewt", "--seeds=0,1", "--jobs", "2", "--seed", "9", "--out=runs/x", "--json",
            "--overwrite", "--hidden", "64"]
    assert seeds.seed_command(argv, 4, "runs/x/seed-4", resume=False, overwrite=True) == [
        "train", "tag", "--ud-ewt", "--hidden", "64", "--seed", "4", "--out", "runs/x/seed-4", "--json",
        "--no-progress", "--overwrite"]
    assert seeds.seed_command(argv, 4, "d", resume=True, overwrite=True)[-1] == "--resume"


@pytest.mark.parametrize("flags, says", [
    # a seed fails (one job at a time: seed 0 runs alone, so its failure is the one that stops the command)
    (["--seeds", "0,1", "--jobs", "1", "--out", "{tmp}/e", "--tsv", "{tmp}/missing.tsv"], "seed 0: "),
    (["--seeds", "0,1"], "--seeds needs --out"),
    (["--seeds", "2"], "two or more different integers"),
    (["--seeds", "1,1", "--out", "{tmp}/e"], "two or more different integers"),
    (["--seeds", "0,x", "--out", "{tmp}/e"], "separated by commas"),
    (["--jobs", "2", "--out", "{tmp}/e"], "--jobs goes with --seeds"),
    (["--seeds", "0,1", "--seed", "3", "--out", "{tmp}/e"], "--seed or --seeds"),
])
def test_bad_seeds_flags_exit_2_with_one_line(tmp_path, capsys, flags, says):
    argv = classify_argv(tmp_path)
    try:
        code = main([*argv, *[f.format(tmp=tmp_path) for f in flags]])
    except SystemExit as stop:       # a flag refused while parsing
        code = stop.code
    err = capsys.readouterr().err
    assert code == USER_ERROR
    assert says in err and "Traceback" not in err
    if says == "seed 0: ":
        assert "missing.tsv" in err.strip().splitlines()[-1]      # the command's error names the file
