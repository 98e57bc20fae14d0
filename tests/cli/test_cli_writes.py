"""Issue 29's data-loss cases through the command line: every command that writes a file writes
over nothing it was not asked to (an existing file only with --overwrite, its own input never),
and a refusal is one line on stderr, exit status 2, with every byte left as it was."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnlab
from rnnlab import layers as L
from rnnlab.cli import main
from rnnlab.interop import export_onnx
from rnnlab.models.seq2seq import Seq2Seq

SRC = str(Path(__file__).resolve().parents[2] / "src")
TINY_LM = ["--level", "char", "--hidden", "8", "--emb", "4", "--bptt", "6", "--batch", "3", "--eval-batch", "2",
           "--epochs", "1", "--no-progress"]


def _export(*argv) -> int:
    """`rnnlab export`'s exit status (it exits with SystemExit(2) itself on a refusal)."""
    try:
        return main(["export", *map(str, argv)])
    except SystemExit as exit:
        return exit.code


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(capsys, *words):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert all(w in err[0] for w in words), err[0]


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    (folder / "poem.txt").write_text("roses are red\nviolets are blue\n" * 10)
    assert main(["train", "lm", "--text", str(folder / "poem.txt"), *TINY_LM, "--out", str(folder / "run")]) == 0
    return folder / "run"


@pytest.mark.parametrize("name", ["best.npz", "last.npz", "config.json", "vocab.json"])
def test_export_never_writes_over_its_own_run_even_with_overwrite(lm_run, name, capsys):
    before = _snapshot(lm_run)
    for extra in ([], ["--overwrite"]):
        assert _export(lm_run, "--out", lm_run / name, *extra) == 2
        _refused(capsys, name, "own input", "refused even with --overwrite")
    assert _snapshot(lm_run) == before
    assert main(["eval", str(lm_run), "--json"]) == 0   # what failed once best.npz was an ONNX file


def test_export_never_writes_over_the_model_file_it_converts(tmp_path, capsys):
    for source in (tmp_path / "model.keras", tmp_path / "model.npz"):
        source.write_bytes(b"the user's model")
        assert _export(source, "--out", source, "--overwrite") == 2
        _refused(capsys, source.name, "own input")
        assert source.read_bytes() == b"the user's model"


def test_export_replaces_an_existing_file_only_with_overwrite(tmp_path, capsys):
    pytest.importorskip("onnx")
    model = rnnlab.Sequential([L.Input((None, 3)), L.LSTM(4), L.Dense(2)])
    model.save(tmp_path / "clf.npz")
    precious = tmp_path / "precious.txt"
    precious.write_text("a year of notes")
    assert _export(tmp_path / "clf.npz", "--out", precious) == 2
    _refused(capsys, "precious.txt already exists", "--overwrite")
    assert precious.read_text() == "a year of notes"
    assert _export(tmp_path / "clf.npz", "--out", precious, "--overwrite") == 0
    assert precious.read_bytes() != b"a year of notes"


def _demo(out, *extra, cwd=None):
    """`rnnlab demo` in a process of its own (one BLAS thread: no re-execution), run in ``cwd``."""
    env = {**os.environ, "PYTHONPATH": SRC, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"}
    code = "import sys; from rnnlab.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, "demo", "--n", "200", "--epochs", "1", "--out", str(out),
                           "--no-progress", *extra], env=env, capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.slow   # seconds: a real training or a process under a memory cap
def test_demo_refuses_a_folder_holding_another_run_or_heatmap(lm_run, tmp_path):
    """`rnnlab demo --out DIR` used to train with overwrite on, replacing the run in DIR/run."""
    shutil.copytree(lm_run, tmp_path / "demo" / "run")
    before = _snapshot(tmp_path / "demo")
    proc = _demo(tmp_path / "demo")
    assert proc.returncode == 2 and proc.stdout == ""
    err = proc.stderr.strip().splitlines()   # the banner, then the one error line
    assert "Traceback" not in proc.stderr and "already holds a run" in err[-1] and "--overwrite" in err[-1], err
    assert _snapshot(tmp_path / "demo") == before
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "attention.png").write_bytes(b"a heatmap kept")
    proc = _demo(tmp_path / "other")
    assert proc.returncode == 2 and "attention.png already exists" in proc.stderr and proc.stdout == ""
    assert _snapshot(tmp_path / "other") == {Path("attention.png"): b"a heatmap kept"}
    (tmp_path / "here").mkdir()
    proc = _demo("", cwd=tmp_path / "here")   # used to put the run into the current folder
    assert proc.returncode == 2 and "--out is empty" in proc.stderr.strip().splitlines()[-1]
    assert list((tmp_path / "here").iterdir()) == []


def test_experiment_refuses_a_folder_holding_a_run(lm_run, tmp_path, capsys):
    """`rnnlab experiment NAME --out RUN` used to replace the run's results.json."""
    run = shutil.copytree(lm_run, tmp_path / "run")
    before = _snapshot(run)
    assert main(["experiment", "parameter-count", "--size", "tiny", "--out", str(run)]) == 2
    _refused(capsys, str(run), "already holds files", "--overwrite")
    assert _snapshot(run) == before
    assert main(["experiment", "parameter-count", "--size", "tiny", "--out", ""]) == 2
    _refused(capsys, "--out is empty")


def test_data_replaces_its_file_only_with_overwrite(tmp_path, capsys):
    target = tmp_path / "pairs.tsv"
    target.write_text("precious\tpairs\n")
    assert main(["data", "dates", "--n", "5", "--out", str(target)]) == 2
    _refused(capsys, "pairs.tsv already exists", "--overwrite")
    assert target.read_text() == "precious\tpairs\n"
    assert main(["data", "dates", "--n", "5", "--out", str(target), "--overwrite"]) == 0
    assert len(target.read_text().splitlines()) == 5
    capsys.readouterr()
    assert main(["data", "dates", "--n", "5", "--out", ""]) == 2   # used to print to stdout instead
    _refused(capsys, "--out is empty")


def test_an_empty_out_is_refused_not_taken_for_the_current_folder(tmp_path, monkeypatch, capsys):
    """`--out ""` used to write a run's files into the current folder."""
    (tmp_path / "poem.txt").write_text("roses are red\n" * 20)
    monkeypatch.chdir(tmp_path)
    for command in (["train", "lm", "--text", "poem.txt", *TINY_LM],
                    ["train", "classify", "--tsv", "missing.tsv", "--epochs", "1"]):
        assert main([*command, "--out", ""]) == 2
        _refused(capsys, "--out is empty")
    assert sorted(os.listdir(tmp_path)) == ["poem.txt"]


@pytest.mark.parametrize("plot, words", [("DIR", ["is a folder", ".png"]), ("notes.txt", ["must end in .png"]),
                                         ("old.png", ["old.png already exists", "--overwrite"])])
def test_translate_plot_is_a_new_png_file_checked_before_decoding(tmp_path, capsys, plot, words):
    """`--plot DIR` used to write DIR.png beside the folder; `--plot a.txt` failed in matplotlib."""
    (tmp_path / "DIR").mkdir()
    (tmp_path / "notes.txt").write_text("notes")
    (tmp_path / "old.png").write_bytes(b"old picture")
    before = _snapshot(tmp_path)
    assert main(["translate", str(tmp_path / "no-such-run"), "6/21/07", "--plot", str(tmp_path / plot)]) == 2
    _refused(capsys, "--plot", *words)
    assert _snapshot(tmp_path) == before


def test_results_json_names_its_checkpoint_for_classify(tmp_path, capsys):
    """The README promises `checkpoint` / `checkpoint_epoch` in every results.json."""
    lines = [f"{'good fine great' if i % 2 else 'bad awful poor'} film {i}\t{'pos' if i % 2 else 'neg'}"
             for i in range(60)]
    for name, part in (("train.tsv", lines[:40]), ("valid.tsv", lines[40:50]), ("test.tsv", lines[50:])):
        (tmp_path / name).write_text("text\tlabel\n" + "\n".join(part) + "\n")
    assert main(["train", "classify", "--tsv", str(tmp_path / "train.tsv"), "--valid", str(tmp_path / "valid.tsv"),
                 "--test", str(tmp_path / "test.tsv"), "--hidden", "4", "--emb", "4", "--epochs", "2",
                 "--no-progress", "--out", str(tmp_path / "run")]) == 0
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    best = max(rows, key=lambda r: r["valid_accuracy"])   # the first of equal values, as the trainer keeps
    assert results["checkpoint"] == "best" and results["checkpoint_metric"] == "valid_accuracy"
    assert results["checkpoint_epoch"] == best["epoch"]
    assert results["valid_accuracy"] == pytest.approx(best["valid_accuracy"])


def test_a_seq2seq_export_checks_both_files_before_writing_either(tmp_path):
    """The decoder-step file already there: the encoder file must not be written either."""
    pytest.importorskip("onnx")
    model = Seq2Seq(13, 11, emb=4, hidden=4, seed=0)
    model.forward(np.ones((1, 3), dtype=np.int64), np.ones((1, 2), dtype=np.int64))   # builds every layer
    model.eval()
    (tmp_path / "s2s.decoder_step.onnx").write_bytes(b"an earlier export")
    with pytest.raises(FileExistsError, match="s2s.decoder_step.onnx already exists"):
        export_onnx(model, tmp_path / "s2s.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s2s.decoder_step.onnx"]
    assert [p.name for p in export_onnx(model, tmp_path / "s2s.onnx", overwrite=True)] == [
        "s2s.encoder.onnx", "s2s.decoder_step.onnx"]
