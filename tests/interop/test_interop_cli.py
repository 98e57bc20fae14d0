"""`rnnlab export`: run folders (language model, seq2seq), .npz and .keras files, refusals
(exit 2), and examples/onnx_generate.py against `rnnlab sample`."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rnnlab
from rnnlab import layers as L
from rnnlab.cli import main
from test_interop_onnx import require_onnx

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "onnx_generate.py"


def _last_json(capsys):
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    corpus = folder / "poem.txt"
    corpus.write_text("\n".join(["roses are red", "violets are blue", "sugar is sweet"] * 10) + "\n")
    out = folder / "run"
    assert main(["train", "lm", "--text", str(corpus), "--level", "char", "--hidden", "16", "--emb", "8",
                 "--layers", "2", "--bptt", "8", "--batch", "4", "--epochs", "1", "--optimizer", "adam",
                 "--lr", "0.02", "--seed", "1", "--out", str(out), "--no-progress", "--json"]) == 0
    return out


def test_export_language_model_run_and_generate_with_onnxruntime_alone(lm_run, tmp_path, capsys):
    require_onnx()
    capsys.readouterr()
    target = tmp_path / "poem.onnx"
    assert main(["export", str(lm_run), "--format", "onnx", "--out", str(target), "--json"]) == 0
    result = _last_json(capsys)
    assert result["files"] == [str(target)] and result["model"] == "LanguageModel"
    assert main(["sample", str(lm_run), "--prime", "roses ", "--length", "40", "--temperature", "0", "--json"]) == 0
    expected = _last_json(capsys)["text"]
    # the example must not need rnnlab: run it where rnnlab cannot be imported
    code = ("import sys; sys.modules['rnnlab'] = None; sys.argv = sys.argv[1:]; "
            f"import runpy; runpy.run_path({str(EXAMPLE)!r}, run_name='__main__')")
    done = subprocess.run([sys.executable, "-c", code, "onnx_generate.py", str(target), "--prime", "roses ",
                           "--length", "40", "--temperature", "0"], capture_output=True, text=True, check=True)
    assert done.stdout[:-1] == expected  # print adds one newline


def test_export_seq2seq_run(tmp_path, capsys):
    require_onnx()
    run_dir = tmp_path / "s2s"
    assert main(["train", "seq2seq", "--generated", "dates", "--n", "120", "--attention", "luong", "--cell", "lstm",
                 "--hidden", "8", "--emb", "4", "--epochs", "1", "--batch", "32", "--out", str(run_dir),
                 "--no-progress", "--json"]) == 0
    capsys.readouterr()
    assert main(["export", str(run_dir), "--out", str(tmp_path / "dates.onnx"), "--json"]) == 0
    files = _last_json(capsys)["files"]
    assert [Path(f).name for f in files] == ["dates.encoder.onnx", "dates.decoder_step.onnx"]
    import onnx
    meta = {p.key: p.value for p in onnx.load(files[1]).metadata_props}
    assert json.loads(meta["rnnlab_tgt_vocab"])["itos"][:2] and meta["rnnlab_task"] == "seq2seq"


def test_export_npz_and_keras_and_refusals(tmp_path, capsys):
    ort = require_onnx()
    model = rnnlab.Sequential([L.Input((5, 3)), L.GRU(4), L.Dense(2)])
    model.save(tmp_path / "clf.npz")
    assert main(["export", str(tmp_path / "clf.npz"), "--out", str(tmp_path / "clf.onnx")]) == 0
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    sess = ort.InferenceSession(str(tmp_path / "clf.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], model.eval().forward(x), atol=1e-5, rtol=0)
    # unsupported layer: one line naming it, exit status 2, no file
    bad = rnnlab.Sequential([L.Input((5,)), L.Embedding(6, 2, mask_zero=True, name="padded"), L.LSTM(2)])
    bad.save(tmp_path / "bad.npz")
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path / "bad.npz"), "--out", str(tmp_path / "bad.onnx"), "--json"])
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and "'padded'" in captured.err and "mask_zero" in captured.err
    assert "error" in json.loads(captured.out.strip().splitlines()[-1])
    assert not (tmp_path / "bad.onnx").exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["export", str(tmp_path / "missing"), "--out", str(tmp_path / "m.onnx")])
    assert exit_info.value.code == 2
