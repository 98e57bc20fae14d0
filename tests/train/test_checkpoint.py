"""Checkpoints: exact round trips, optimizer state, atomic writes, damaged files."""
import json
import os

import numpy as np
import pytest

import rnnlab as rl
from rnnlab import layers as L
from rnnlab import optim
from rnnlab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def _model(seed=0):
    return rl.Sequential([L.Input((3, 4)), L.Dense(5, activation="tanh", seed=seed), L.Flatten(),
                          L.Dense(2, seed=seed + 1)], name="net")


def _train_steps(model, opt, steps, seed):
    rng = np.random.default_rng(seed)
    loss = rl.losses.MSE()
    for _ in range(steps):
        x = rng.standard_normal((4, 3, 4)).astype(model.params[0].dtype)
        y = rng.standard_normal((4, 2)).astype(model.params[0].dtype)
        loss.forward(model.forward(x), y)
        model.backward(loss.backward())
        opt.step(model.params, model.grads)


def test_round_trip_is_exact_with_optimizer_and_state(tmp_path):
    model = _model()
    opt = optim.Adam(lr=0.01)
    _train_steps(model, opt, 3, seed=1)
    rng_state = np.random.default_rng(7).bit_generator.state
    state = {"epoch": 2, "rng": rng_state, "carry": [np.arange(6.0).reshape(2, 3)], "best": np.float64(1.5)}
    path = save_checkpoint(tmp_path / "ckpt.npz", model, opt, state)
    assert sorted(os.listdir(tmp_path)) == ["ckpt.npz"]          # no temporary file left behind

    ckpt = load_checkpoint(path)
    assert type(ckpt.model) is rl.Sequential and ckpt.model.name == "net"
    for a, b in zip(ckpt.model.params, model.params):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert ckpt.state["epoch"] == 2 and ckpt.state["best"] == 1.5
    assert ckpt.state["rng"] == rng_state
    np.testing.assert_array_equal(ckpt.state["carry"][0], np.arange(6.0).reshape(2, 3))

    # resuming the optimizer continues exactly like the uninterrupted run
    restored = optim.from_state_dict(ckpt.optimizer_arrays, ckpt.optimizer_meta)
    _train_steps(model, opt, 2, seed=2)
    _train_steps(ckpt.model, restored, 2, seed=2)
    for a, b in zip(ckpt.model.params, model.params):
        np.testing.assert_array_equal(a, b)


def test_model_save_and_rnnlab_load_keep_dtype_and_lazy_builds(tmp_path, float64):
    model = rl.Sequential([L.Dense(3), L.Dropout(0.2), L.Dense(1)])   # no Input: built by forward
    x = np.random.default_rng(0).standard_normal((2, 5))
    y = model.eval().forward(x)
    model.save(tmp_path / "m.npz")
    rl.set_floatx("float32")                     # loading elsewhere does not change the weights
    clone = rl.load(tmp_path / "m.npz")
    assert clone.params[0].dtype == np.float64
    np.testing.assert_array_equal(clone.eval().forward(x), y)
    ckpt = load_checkpoint(tmp_path / "m.npz")
    assert ckpt.optimizer_arrays is None and ckpt.optimizer_meta is None and ckpt.state is None


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = _model()
    path = tmp_path / "last.npz"
    save_checkpoint(path, model)
    before = path.read_bytes()

    def crash(file, **arrays):
        file.write(b"PK\x03\x04 half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, _model(seed=5))
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["last.npz"]


@pytest.mark.parametrize("keep", [0.5, 0.98, 0.0])
def test_truncated_file_is_a_clear_error(tmp_path, keep):
    path = tmp_path / "cut.npz"
    save_checkpoint(path, _model())
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])
    with pytest.raises(CheckpointError, match=r"cut\.npz.*(truncated|corrupt)"):
        load_checkpoint(path)


def test_flipped_bytes_are_caught(tmp_path):
    path = tmp_path / "flip.npz"
    model = _model()
    save_checkpoint(path, model, state={"epoch": 1})
    data = path.read_bytes()
    # a byte inside the first weight array, and one inside the JSON meta
    weight_bytes = model.params[0].tobytes()
    meta_at = data.index(b'"format"')
    for offset in (data.index(weight_bytes) + 5, meta_at + 3):
        bad = bytearray(data)
        bad[offset] ^= 0x01
        path.write_bytes(bytes(bad))
        with pytest.raises(CheckpointError, match=r"flip\.npz"):
            load_checkpoint(path)


@pytest.mark.slow
def test_no_byte_flip_anywhere_goes_unnoticed(tmp_path):
    """Flip one byte at a time across the whole file: each load either fails with
    CheckpointError or gives back exactly the saved model and state (the byte was in a zip
    field that carries nothing, such as a timestamp)."""
    path = tmp_path / "sweep.npz"
    model = rl.Sequential([L.Input((2,)), L.Dense(2, seed=0)], name="tiny")
    save_checkpoint(path, model, state={"epoch": 3})
    data = path.read_bytes()
    weights = [p.copy() for p in model.params]
    caught = 0
    for offset in range(0, len(data), 3):
        bad = bytearray(data)
        bad[offset] ^= 0x10
        path.write_bytes(bytes(bad))
        try:
            ckpt = load_checkpoint(path)
        except CheckpointError:
            caught += 1
            continue
        assert ckpt.state == {"epoch": 3}
        assert all(np.array_equal(a, b) for a, b in zip(ckpt.model.params, weights)), offset
    assert caught > len(data) // 6


def test_files_that_are_not_checkpoints(tmp_path):
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.zeros(3))
    with pytest.raises(CheckpointError, match=r"plain\.npz.*not an rnnlab checkpoint"):
        load_checkpoint(plain)
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(CheckpointError, match=r"pickled\.npz"):
        load_checkpoint(pickled)                 # allow_pickle=False: never unpickled
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match=r"notes\.npz"):
        load_checkpoint(text)
    with pytest.raises(FileNotFoundError, match=r"missing\.npz"):
        load_checkpoint(tmp_path / "missing.npz")


def test_meta_layout_follows_the_contract(tmp_path):
    path = tmp_path / "c.npz"
    model = _model()
    opt = optim.SGD(lr=0.5, momentum=0.9)
    _train_steps(model, opt, 1, seed=0)
    save_checkpoint(path, model, opt, {"epoch": 1})
    with np.load(path, allow_pickle=False) as npz:
        names = set(npz.files)
        meta = json.loads(npz["__meta__"].tobytes().decode("utf-8"))
    assert {f"model/{i}" for i in range(4)} <= names
    assert {f"optim/momentum/{i}" for i in range(4)} <= names
    assert meta["format"] == "rnnlab-checkpoint" and meta["version"] == 1
    assert meta["model"]["class_name"] == "Sequential"
    assert meta["optimizer"]["class_name"] == "SGD" and meta["optimizer"]["config"]["lr"] == 0.5
    assert meta["state"] == {"epoch": 1}


def test_weight_shape_mismatch_names_the_file(tmp_path):
    path = tmp_path / "edited.npz"
    save_checkpoint(path, _model())
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    meta = json.loads(arrays["__meta__"].tobytes())
    meta["model"]["config"]["layers"][1]["config"]["units"] = 6     # config no longer fits
    del meta["meta_sha256"]  # (an edit that drops the meta's own checksum too: the shapes still catch it)
    meta_bytes = json.dumps(meta).encode()
    arrays["__meta__"] = np.frombuffer(meta_bytes, dtype=np.uint8)
    np.savez(path, **arrays)
    with pytest.raises(CheckpointError, match=r"edited\.npz.*weight 0 has shape \(4, 5\).*\(4, 6\)"):
        load_checkpoint(path)
