"""The issue-12 reproductions through the command line: each test runs the command the issue
ran (or its library equivalent) and fails on the code before the fix."""
import json
import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnlab.checkpoint import load_checkpoint
from rnnlab.cli import main

SRC = str(Path(__file__).resolve().parents[2] / "src")
TINY_LM = ["--level", "char", "--hidden", "12", "--emb", "8", "--bptt", "6", "--batch", "3",
           "--eval-batch", "2", "--no-progress"]


def _python(code: str, *args, env=None, timeout=300):
    env = {**os.environ, "PYTHONPATH": SRC, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1", **(env or {})}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=timeout)


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and "Traceback" not in "\n".join(err)
    assert all(w in err[-1] for w in words), err[-1]


def test_a_finite_explosion_stops_with_the_divergence_message(tmp_path, capsys, word_text):
    """`--lr 1e6 --clip 0` used to exit 0 with a 4.5e6-nats model saved as best."""
    run_dir = tmp_path / "run"
    code = main(["train", "lm", "--text", str(word_text), *TINY_LM, "--optimizer", "sgd", "--lr", "1e6",
                 "--clip", "0", "--epochs", "2", "--checkpoint-every", "1", "--out", str(run_dir)])
    assert code == 2
    _one_line_error(capsys, "training diverged", "exploded", "last good checkpoint")
    assert not (run_dir / "best.npz").exists()
    if (run_dir / "last.npz").exists():  # the last good one: a loss near the untrained model's
        assert all(np.isfinite(p).all() for p in load_checkpoint(run_dir / "last.npz").model.params)


def test_seq2seq_refuses_a_folder_holding_another_run(tmp_path, capsys, word_text):
    run_dir = tmp_path / "run"
    assert main(["train", "lm", "--text", str(word_text), *TINY_LM, "--epochs", "1", "--out", str(run_dir)]) == 0
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    code = main(["train", "seq2seq", "--generated", "dates", "--n", "60", "--hidden", "8", "--emb", "4",
                 "--epochs", "1", "--out", str(run_dir), "--no-progress"])
    assert code == 2
    _one_line_error(capsys, "already holds a run", "--overwrite")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before


def test_a_failed_resume_rewrites_nothing_and_a_failed_start_leaves_no_folder(tmp_path, capsys, word_text):
    text = word_text
    run_dir = tmp_path / "run"
    assert main(["train", "lm", "--text", str(text), *TINY_LM, "--epochs", "1", "--out", str(run_dir)]) == 0
    config = (run_dir / "config.json").read_bytes()
    text.rename(tmp_path / "moved.txt")  # the data is gone: the resume cannot start
    assert main(["train", "lm", "--out", str(run_dir), "--resume", "--epochs", "3", "--no-progress"]) == 2
    assert (run_dir / "config.json").read_bytes() == config
    capsys.readouterr()
    fresh = tmp_path / "fresh"
    assert main(["train", "lm", "--text", str(tmp_path / "missing.txt"), *TINY_LM, "--out", str(fresh)]) == 2
    _one_line_error(capsys, "missing.txt")
    assert not fresh.exists()


def test_run_files_get_the_umask_mode_like_the_plots(tmp_path, word_text):
    run_dir = tmp_path / "run"
    assert main(["train", "lm", "--text", str(word_text), *TINY_LM, "--epochs", "1", "--out", str(run_dir)]) == 0
    expected = 0o666 & ~(lambda m: (os.umask(m), m)[1])(os.umask(0o022))
    for name in ("config.json", "vocab.json", "best.npz", "last.npz", "results.json"):
        assert stat.S_IMODE((run_dir / name).stat().st_mode) == expected, name


def test_the_demo_without_matplotlib_keeps_its_accuracy(tmp_path):
    """A core-only install: the demo used to train, then exit 1 and lose its accuracy."""
    code = ("import sys; sys.modules['matplotlib'] = None; from rnnlab.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    proc = _python(code, "demo", "--n", "200", "--epochs", "1", "--out", tmp_path / "demo", "--no-progress",
                   "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 0 <= result["exact_match"] <= 1 and result["heatmap"] is None
    assert "exact match on" in proc.stdout and "matplotlib" in proc.stderr
    assert (tmp_path / "demo" / "run" / "best.npz").exists()


@pytest.mark.slow
def test_a_million_character_pairs_line_is_skipped_in_bounded_memory(tmp_path):
    """One 1,000,000-character line used to take `train seq2seq` to 23 GB."""
    pairs = tmp_path / "pairs.tsv"
    rng = np.random.default_rng(0)
    lines = [f"{a} plus {b}\t{a + b}" for a, b in rng.integers(0, 50, (80, 2))]
    lines.insert(41, "x" * 1_000_000 + "\ty")
    pairs.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # the peak of what Python and NumPy allocate (tracemalloc sees NumPy's arrays), not the
    # process's RSS: that also counts numba compiling its kernels on a fresh machine (~300 MB once)
    code = ("import sys, tracemalloc; tracemalloc.start(); from rnnlab.cli import main; code = main(sys.argv[1:]); "
            "print(tracemalloc.get_traced_memory()[1]); sys.exit(code)")
    proc = _python(code, "train", "seq2seq", "--pairs", pairs, "--hidden", "8", "--emb", "4", "--epochs", "1",
                   "--batch", "16", "--out", tmp_path / "run", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "skipped 1 pairs longer than 1000 characters (lines 42;" in proc.stderr
    assert int(proc.stdout.strip().splitlines()[-1]) < 400 * 2**20  # bytes: a few hundred MB at most


def test_the_largest_padded_batch_is_checked_against_the_memory():
    from rnnlab.data.pairs import PairData, check_batch_memory

    data = PairData.build([("a" * 500, "b" * 500), ("c", "d")])
    need = check_batch_memory(data, 64, hidden=256, emb=32, available=1 << 40)
    assert need > 2 * 1001 * 12 * 256 * 4
    with pytest.raises(MemoryError, match=r"largest padded batch \(2 pairs, source 500.*lower --batch"):
        check_batch_memory(data, 64, hidden=256, emb=32, available=need - 1)
