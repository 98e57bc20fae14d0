"""Checkpoints as an adversary hands them in (issue 12): everything is checked before anything
large is allocated, and every refusal is a CheckpointError naming the file."""
import errno
import io
import hashlib
import json
import pickle
import tracemalloc
import zipfile

import numpy as np
import pytest

import rnnlab as rl
from rnnlab import layers as L
from capped import run_capped
from rnnlab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rnnlab.cli import main


def _model():
    return rl.Sequential([L.Input((3, 4)), L.LSTM(5, seed=0), L.Dense(2, seed=1)], name="net")


def _rewrite(path, edit, sign=True):
    """Edit a checkpoint's meta (``edit(meta)``), recomputing its checksum when ``sign`` (an
    adversary who knows the format)."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["__meta__"].tobytes())
    edit(meta)
    if sign:
        meta.pop("meta_sha256", None)
        meta["meta_sha256"] = hashlib.sha256(json.dumps(meta, allow_nan=True).encode()).hexdigest()
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


@pytest.fixture
def saved(tmp_path):
    return save_checkpoint(tmp_path / "ckpt.npz", _model())


def _peak_mib(fn):
    tracemalloc.start()
    try:
        fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return peak / 2**20


def test_an_edited_meta_fails_its_checksum(saved):
    _rewrite(saved, lambda m: m["model"]["config"]["layers"][1]["config"].update(units=6), sign=False)
    with pytest.raises(CheckpointError, match=r"ckpt\.npz.*__meta__ does not match its checksum"):
        load_checkpoint(saved)


def test_a_huge_size_in_the_config_is_refused_before_building(saved):
    """`"hidden": 30000` made eval allocate 27 GiB before any check."""
    _rewrite(saved, lambda m: m["model"]["config"]["layers"][1]["config"].update(units=30000))

    def load():
        with pytest.raises(CheckpointError, match=r"ckpt\.npz.*size of 30,000.*before building"):
            load_checkpoint(saved)

    assert _peak_mib(load) < 20


@pytest.mark.parametrize("dtype", ["os.system", "object", "O", "complex128", "<U8"])
def test_a_meta_dtype_that_is_not_a_float_name_is_refused(saved, dtype):
    _rewrite(saved, lambda m: m.update(dtype=dtype))
    with pytest.raises(CheckpointError, match=r"ckpt\.npz.*dtype"):
        load_checkpoint(saved)


@pytest.mark.parametrize("edit", [
    lambda m: m.pop("sha256"), lambda m: m.update(model="net"), lambda m: m.update(build="x"),
    lambda m: m["model"].pop("class_name"), lambda m: m.update(state=[1]), lambda m: m.update(version="1")])
def test_a_meta_off_its_schema_is_refused(saved, edit):
    _rewrite(saved, edit)
    with pytest.raises(CheckpointError, match=r"ckpt\.npz"):
        load_checkpoint(saved)


@pytest.mark.slow
def test_an_entry_that_would_inflate_a_thousandfold_is_refused_unread(tmp_path, saved):
    """A 1 MB compressed entry inflating to 1 GB was read before it was rejected."""
    bomb = tmp_path / "bomb.npz"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(bomb, "w") as out:
        for info in src.infolist():
            out.writestr(info, src.read(info))
        header = np.lib.format.header_data_from_array_1_0(np.zeros(0, np.uint8))
        header["shape"] = (1 << 30,)
        with out.open(zipfile.ZipInfo("state/x.npy"), "w", force_zip64=True) as f:
            f.write(b"")
        info = zipfile.ZipInfo("optim/x.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with out.open(info, "w", force_zip64=True) as f:
            np.lib.format.write_array_header_1_0(f, header)
            chunk = bytes(1 << 20)
            for _ in range(1024):
                f.write(chunk)
    assert bomb.stat().st_size < 8 << 20

    def load():
        with pytest.raises(CheckpointError, match=r"bomb\.npz.*would inflate.*refused before reading"):
            load_checkpoint(bomb)

    assert _peak_mib(load) < 20


def test_a_header_claiming_more_than_its_entry_holds_is_refused(tmp_path, saved):
    lying = tmp_path / "lying.npz"
    with zipfile.ZipFile(saved) as src, zipfile.ZipFile(lying, "w") as out:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "model/0.npy":  # claims 4e9 floats, holds 16 bytes
                f = io.BytesIO()
                np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False,
                                                         "shape": (1 << 32,)})
                data = f.getvalue() + bytes(16)
            out.writestr(info, data)

    def load():
        with pytest.raises(CheckpointError, match=r"lying\.npz.*claims shape \(4294967296,\)"):
            load_checkpoint(lying)

    assert _peak_mib(load) < 20


def test_a_pickle_is_refused_without_suggesting_to_unpickle_it(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(pickle.dumps({"a": np.zeros(3)}))
    with pytest.raises(CheckpointError, match=r"model\.npz.*not an rnnlab checkpoint") as info:
        rl.load(path)
    assert "allow_pickle" not in str(info.value) and "unsafe" not in str(info.value)


def test_a_full_disk_names_the_file(tmp_path, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(np, "savez", full)
    with pytest.raises(OSError, match=r"cannot write .*full\.npz: No space left") as info:
        save_checkpoint(tmp_path / "full.npz", _model())
    assert info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # no temporary file left behind


def test_a_resume_state_with_a_bad_epoch_is_refused_naming_the_file(tmp_path, capsys):
    from rnnlab.cli import main

    text = tmp_path / "abc.txt"
    text.write_text("the cat sat on the mat\n" * 40, encoding="utf-8")
    run = tmp_path / "run"
    tiny = ["--level", "char", "--hidden", "8", "--emb", "4", "--bptt", "6", "--batch", "2", "--no-progress"]
    assert main(["train", "lm", "--text", str(text), *tiny, "--epochs", "1", "--out", str(run)]) == 0
    good = (run / "last.npz").read_bytes()
    for bad in ({"epoch": "x"}, {"epoch": 0}, {"batch": None}):
        (run / "last.npz").write_bytes(good)
        _rewrite(run / "last.npz", lambda m: m["state"].update(bad))
        capsys.readouterr()
        assert main(["train", "lm", "--out", str(run), "--resume", "--epochs", "2", "--no-progress"]) == 2
        err = capsys.readouterr().err
        assert "last.npz" in err and "Traceback" not in err and list(bad)[0] in err


@pytest.mark.parametrize("name, content", [
    ("vocab.json", "[1, 2]"), ("vocab.json", '{"specials": [], "itos": [1]}'), ("vocab.json", "{"),
    ("vocab.json", '{"specials": ["<eos>"]}'), ("config.json", "[]"), ("config.json", '{"hidden": 8}'),
    ("config.json", "\xff")])
def test_a_malformed_run_file_is_one_line_naming_it(tmp_path, capsys, name, content):
    from rnnlab.cli import main

    text = tmp_path / "abc.txt"
    text.write_text("the cat sat on the mat\n" * 40, encoding="utf-8")
    run = tmp_path / "run"
    tiny = ["--level", "char", "--hidden", "8", "--emb", "4", "--bptt", "6", "--batch", "2", "--no-progress"]
    assert main(["train", "lm", "--text", str(text), *tiny, "--epochs", "1", "--out", str(run)]) == 0
    (run / name).write_text(content, encoding="utf-8")
    capsys.readouterr()
    for argv in (["sample", str(run), "--length", "5"], ["eval", str(run)]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and name in err, err


def test_long_sequences_do_not_count_as_sizes(tmp_path):
    """A small model built on long inputs (time 5000) is no oversized config."""
    model = rl.Sequential([L.Input((5000, 2)), L.SimpleRNN(3, seed=0), L.Dense(1, seed=1)])
    path = save_checkpoint(tmp_path / "long.npz", model)
    for a, b in zip(load_checkpoint(path).model.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


def _load_capped(path) -> str:
    """What load_checkpoint(path) ends in, run under a 1 GiB memory cap: the refusal's message,
    or "loaded"."""
    return run_capped(f"""
        from rnnlab.checkpoint import CheckpointError, load_checkpoint
        try:
            load_checkpoint({str(path)!r})
            print(json.dumps("loaded"))
        except CheckpointError as err:
            print(json.dumps(str(err)))
    """)


def test_a_signed_size_the_weights_could_count_is_refused_by_shape_before_building(tmp_path):
    """Issue 29 case 5: with 30,000 weights stored (an embedding of 30,000 rows), a re-signed meta
    asking for LSTM(30000) passed the size check and tried 26.8 GiB; the shapes the config
    implies are now compared with those stored, before the model is built."""
    model = rl.Sequential([L.Input((3,)), L.Embedding(30000, 1, seed=0), L.LSTM(4, seed=1), L.Dense(2, seed=2)])
    path = save_checkpoint(tmp_path / "big.npz", model)
    _rewrite(path, lambda m: m["model"]["config"]["layers"][2]["config"].update(units=30000))
    message = _load_capped(path)
    assert "big.npz" in message and "weight 1 has shape (1, 16)" in message and "(1, 120000)" in message


def test_a_model_rebuilt_into_builds_only_the_weights_the_file_holds(tmp_path):
    """load_checkpoint(into=): a lazily built layer of the given model is built as recorded, but
    a weight the checkpoint holds no array of is refused before it is allocated (building
    GRU(2000) would draw a 6000 x 2000 float64 matrix for its orthogonal init: 96 MB)."""
    small = rl.Sequential([L.GRU(4, seed=0)])
    small.build((3, 2))
    saved = save_checkpoint(tmp_path / "small.npz", small)
    larger = rl.Sequential([L.GRU(2000, seed=0)])  # not built: load_checkpoint builds it from the record

    def load():
        with pytest.raises(CheckpointError, match=r"small\.npz' holds no weight of shape \(2, 6000\) for the kernel "):
            load_checkpoint(saved, into=larger)

    assert _peak_mib(load) < 5
    assert not larger.sublayers[0].params


def test_a_resume_with_an_enlarged_config_is_refused_before_the_model_is_built(tmp_path, word_text):
    """Issue 29 case 5: `--resume` after config.json's hidden went from 8 to 6000 built a
    288 M-parameter model before comparing it with last.npz."""
    run_dir = tmp_path / "run"
    assert main(["train", "lm", "--text", str(word_text), "--level", "char", "--hidden", "8", "--emb", "4",
                 "--bptt", "6", "--batch", "3", "--epochs", "1", "--out", str(run_dir), "--no-progress"]) == 0
    config = json.loads((run_dir / "config.json").read_text())
    (run_dir / "config.json").write_text(json.dumps({**config, "hidden": 6000}))
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    outcome = run_capped(f"""
        import contextlib, io
        from rnnlab.cli import main
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(["train", "lm", "--out", {str(run_dir)!r}, "--resume", "--epochs", "2", "--no-progress"])
        print(json.dumps([code, err.getvalue()]))
    """)
    code, err = outcome
    error = err.splitlines()[-1]  # after the line describing the data, read first
    assert code == 2 and error.startswith("rnnlab train lm: error"), err
    assert "last.npz" in error and "holds no weight of shape (4, 24000)" in error and "before allocating" in error
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
