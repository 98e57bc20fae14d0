"""Keras files as an adversary hands them in (issue 29 cases 4, 6 and 9): ``load_keras`` reads
nothing but its own file, checks every declared size and shape before allocating, and refuses
anything else with a ValueError naming the file (one line and exit status 2 from the CLI).
The files are made here with h5py and zipfile, as an adversary would, not with Keras."""
import json
import struct
import zipfile
import zlib

import numpy as np
import pytest

from capped import run_capped
from rnnlab.cli import main
from rnnlab.interop import UnsupportedError, load_keras

h5py = pytest.importorskip("h5py")

SECRET = b"not yours to read: 0123456789abcdef" * 8


def _config(*layers, input_shape=(None, 5, 3)):
    """A Keras 3 Sequential config: an InputLayer, then ``layers`` as (class_name, config)."""
    entries = [{"class_name": "InputLayer", "config": {"batch_shape": list(input_shape), "name": "input"}}]
    defaults = {"LSTM": {"activation": "tanh", "recurrent_activation": "sigmoid"}, "Dense": {"activation": "linear"}}
    entries += [{"class_name": cls, "config": {"name": cls.lower(), **defaults.get(cls, {}), **config}}
                for cls, config in layers]
    return {"class_name": "Sequential", "config": {"name": "net", "layers": entries}}


LSTM_DENSE = _config(("LSTM", {"units": 4}), ("Dense", {"units": 2}))


def _lstm_dense_weights(rng):
    """The weights of LSTM_DENSE, by the path Keras 3 stores them at."""
    shapes = {"layers/lstm/cell/vars/0": (3, 16), "layers/lstm/cell/vars/1": (4, 16),
              "layers/lstm/cell/vars/2": (16,), "layers/dense/vars/0": (4, 2), "layers/dense/vars/1": (2,)}
    return {path: rng.uniform(-0.5, 0.5, shape).astype(np.float32) for path, shape in shapes.items()}


def _write_h5(path, weights, craft=None):
    """A weights file of ``weights`` ({path: array}); ``craft(file)`` adds an adversary's touch."""
    with h5py.File(path, "w") as f:
        for name, array in weights.items():
            f.create_dataset(name, data=array)
        if craft is not None:
            craft(f)
    return path


def _write_keras(path, config, h5_path):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", config if isinstance(config, str) else json.dumps(config))
        z.write(h5_path, "model.weights.h5")
    return path


def _exit_code(argv) -> int:
    """main(argv)'s exit status, whether returned or raised (``rnnlab export`` raises it)."""
    try:
        return main(argv)
    except SystemExit as done:
        return done.code


@pytest.fixture
def weights():
    return _lstm_dense_weights(np.random.default_rng(0))


def _keras(tmp_path, weights, craft=None, config=LSTM_DENSE, name="model.keras"):
    h5 = _write_h5(tmp_path / f"{name}.h5", weights, craft)
    return _write_keras(tmp_path / name, config, h5)


def test_a_handmade_file_loads_its_weights(tmp_path, weights):
    """The baseline the crafted files below depart from: this layout loads, weights in order."""
    model = load_keras(_keras(tmp_path, weights))
    for got, want in zip(model.get_weights(), weights.values()):
        np.testing.assert_array_equal(got, want)


# ---- case 4: reading what it was not given -------------------------------------------------


def _replace(f, path, **kwargs):
    """Replace dataset ``path`` by one made with ``kwargs`` (same shape and dtype)."""
    shape, dtype = f[path].shape, f[path].dtype
    del f[path]
    f.create_dataset(path, shape=shape, dtype=dtype, **kwargs)


def test_external_storage_is_refused_before_anything_is_read(tmp_path, weights):
    """Issue 29 case 4: a dataset whose data live in a local file ("external storage") made
    load_keras read that file into the weights, and `rnnlab export` write it into the ONNX."""
    secret = tmp_path / "secret.bin"
    secret.write_bytes(SECRET)
    path = _keras(tmp_path, weights, lambda f: _replace(f, "layers/dense/vars/0", external=[(str(secret), 0, 32)]))
    with pytest.raises(ValueError, match=r"model\.keras: dataset layers/dense/vars/0 keeps its data in an external "
                                         r"file .*secret\.bin"):
        load_keras(path)
    (tmp_path / "config.json").write_text(json.dumps(LSTM_DENSE))  # the same weights file alone
    with pytest.raises(ValueError, match=r"model\.keras\.h5: dataset layers/dense/vars/0 keeps its data in an ext"):
        load_keras(tmp_path / "model.keras.h5", config=tmp_path / "config.json")


def test_export_of_a_file_with_external_storage_writes_nothing(tmp_path, weights, capsys):
    secret = tmp_path / "secret.bin"
    secret.write_bytes(SECRET)
    path = _keras(tmp_path, weights, lambda f: _replace(f, "layers/lstm/cell/vars/2", external=[(str(secret), 0, 64)]))
    out = tmp_path / "model.onnx"
    assert _exit_code(["export", str(path), "--format", "onnx", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "external file" in err, err
    assert not out.exists()


def test_a_virtual_dataset_is_refused(tmp_path, weights):
    source = tmp_path / "source.h5"
    with h5py.File(source, "w") as f:
        f["data"] = np.zeros((4, 2), np.float32)

    def virtual(f):
        del f["layers/dense/vars/0"]
        layout = h5py.VirtualLayout(shape=(4, 2), dtype=np.float32)
        layout[:] = h5py.VirtualSource(str(source), "data", shape=(4, 2))
        f["layers/dense/vars"].create_virtual_dataset("0", layout)

    with pytest.raises(ValueError, match=r"dataset layers/dense/vars/0 is a virtual dataset"):
        load_keras(_keras(tmp_path, weights, virtual))


def _external_link(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["vars/0"], f["vars/1"] = np.zeros((4, 2), np.float32), np.zeros(2, np.float32)

    def link(f):
        del f["layers/dense/vars"]
        f["layers/dense/vars"] = h5py.ExternalLink(str(other), "/vars")
    return link


def _soft_link(f):
    f["elsewhere/0"], f["elsewhere/1"] = f["layers/dense/vars/0"][()], f["layers/dense/vars/1"][()]
    del f["layers/dense/vars"]
    f["layers/dense/vars"] = h5py.SoftLink("/elsewhere")


@pytest.mark.parametrize("craft, kind", [(_external_link, "ExternalLink"), (lambda tmp_path: _soft_link, "SoftLink")],
                         ids=["external", "soft"])
def test_links_other_than_hard_links_are_refused(tmp_path, weights, craft, kind):
    with pytest.raises(ValueError, match=rf"'layers/dense/vars' is reached through a {kind}"):
        load_keras(_keras(tmp_path, weights, craft(tmp_path)))


def test_only_the_filters_hdf5_builds_in_are_read(tmp_path, weights):
    """gzip and shuffle (which h5py users apply) load; any other filter (a plugin would load a
    shared library; scale-offset is lossy) is refused."""
    gzipped = load_keras(_keras(tmp_path, weights, lambda f: _replace(f, "layers/dense/vars/0", data=weights[
        "layers/dense/vars/0"], compression="gzip", shuffle=True, chunks=(2, 2))))
    np.testing.assert_array_equal(gzipped.get_weights()[3], weights["layers/dense/vars/0"])
    scaled = _keras(tmp_path, weights, lambda f: _replace(f, "layers/dense/vars/0", scaleoffset=4, chunks=(2, 2)),
                    name="scaled.keras")
    with pytest.raises(ValueError, match=r"dataset layers/dense/vars/0 uses HDF5 filter 6"):
        load_keras(scaled)


def test_a_dataset_of_strings_is_refused(tmp_path, weights):
    def strings(f):
        del f["layers/dense/vars/1"]
        f["layers/dense/vars/1"] = np.array([b"ab", b"cd"])

    with pytest.raises(ValueError, match=r"dataset layers/dense/vars/1 holds \|S2, not floats"):
        load_keras(_keras(tmp_path, weights, strings))


# ---- case 6: memory before validation ------------------------------------------------------


def _deflated_zeros(chunks: int) -> tuple[bytes, int]:
    """(a raw deflate stream of ``chunks`` times 16 MiB of zeros, its inflated size), built from
    three compressed chunks: after the first, every chunk of zeros compresses to the same bytes."""
    zeros = b"\0" * (1 << 24)
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    first, middle = deflate.compress(zeros), deflate.compress(zeros)
    return first + middle * (chunks - 1) + deflate.flush(), chunks << 24


def _zip_bomb(path, config, chunks: int, declared: int | None = None):
    """A .keras zip whose model.weights.h5 inflates to ``chunks`` x 16 MiB (its header saying
    ``declared`` bytes, the truth by default): written stored, then patched to deflated."""
    stream, size = _deflated_zeros(chunks)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("config.json", json.dumps(config))
        z.writestr("model.weights.h5", stream)
    data = bytearray(path.read_bytes())
    info = zipfile.ZipFile(path).getinfo("model.weights.h5")
    size = size if declared is None else declared
    local = info.header_offset
    struct.pack_into("<H", data, local + 8, zipfile.ZIP_DEFLATED)
    struct.pack_into("<I", data, local + 22, size)
    central = data.rindex(b"PK\x01\x02")  # the last central entry: this member's
    struct.pack_into("<H", data, central + 10, zipfile.ZIP_DEFLATED)
    struct.pack_into("<I", data, central + 24, size)
    path.write_bytes(bytes(data))
    return path


def _load_capped(path, **kwargs) -> str:
    """What load_keras(path) ends in under a 1 GiB memory cap: the refusal's message, or "loaded"."""
    return run_capped(f"""
        from rnnlab.interop import load_keras
        try:
            load_keras({str(path)!r}, **{kwargs!r})
            print(json.dumps("loaded"))
        except ValueError as err:
            print(json.dumps(str(err)))
    """, imports="import numpy, h5py, rnnlab")


def test_a_zip_bomb_is_refused_by_its_declared_size_unread(tmp_path):
    """Issue 29 case 6: a 3 MB .keras whose weights inflate to 3.3 GB was read whole."""
    path = _zip_bomb(tmp_path / "bomb.keras", LSTM_DENSE, chunks=72)  # 1.2 GB, over the 1 GiB cap
    assert path.stat().st_size < 2 << 20
    message = _load_capped(path)
    assert "bomb.keras: model.weights.h5 would inflate to more than" in message
    assert "(it declares 1,207,959,552) before reading it" in message


def test_a_member_inflating_past_its_header_is_stopped(tmp_path):
    """A header may lie: inflating stops at the size declared (zipfile) and at the limit (here)."""
    path = _zip_bomb(tmp_path / "liar.keras", LSTM_DENSE, chunks=8, declared=1 << 20)
    with pytest.raises(ValueError, match=r"liar\.keras: a damaged \.keras zip \(BadZipFile: Bad CRC-32"):
        load_keras(path)
    honest = _zip_bomb(tmp_path / "honest.keras", LSTM_DENSE, chunks=2)  # 32 MiB, over the limit of 1,000 weights
    with pytest.raises(ValueError, match=r"would inflate to more than 16,785,216 bytes"):
        load_keras(honest, max_params=1000)


def test_a_declared_dataset_larger_than_its_layer_is_refused_unread(tmp_path, weights):
    """Issue 29 case 6: an 11 KB file declaring a 30000 x 30000 dataset (never written: HDF5
    stores nothing for it) was read whole, 3.6 GB."""
    def huge(f):
        del f["layers/dense/vars/0"]
        f.create_dataset("layers/dense/vars/0", shape=(30000, 30000), dtype=np.float32)

    path = _keras(tmp_path, weights, huge)
    assert path.stat().st_size < 64 << 10
    message = _load_capped(path)
    assert "layers/dense/vars holds arrays of shapes [(30000, 30000), (2,)]" in message
    assert "expects [(4, 2), (2,)]; refused before reading them" in message


@pytest.mark.parametrize("layers, count", [
    ((("Embedding", {"input_dim": 1_000_000, "output_dim": 1000}),), "1,000,000,000"),
    ((("LSTM", {"units": 30000}),), "3,600,480,000")], ids=["embedding", "lstm"])
def test_a_config_past_the_parameter_limit_is_refused_before_building(tmp_path, weights, layers, count):
    """Issue 29 case 6: Embedding(1e6, 1000) or LSTM(30000) in config.json tried 7-27 GiB."""
    shape = (None, 5) if layers[0][0] == "Embedding" else (None, 5, 3)
    path = _keras(tmp_path, weights, config=_config(*layers, input_shape=shape))
    message = _load_capped(path)
    assert f"model.keras: the model has {count} parameters, more than the limit of 50,000,000" in message
    assert "load_keras(path, max_params=N) raises the limit" in message


def test_max_params_sets_the_limit(tmp_path, weights):
    path = _keras(tmp_path, weights)
    with pytest.raises(ValueError, match=r"has 138 parameters, more than the limit of 137"):
        load_keras(path, max_params=137)
    assert load_keras(path, max_params=138).count_params() == 138


# ---- case 9: crafted configs, one line each ------------------------------------------------


@pytest.mark.parametrize("config, message", [
    ({"class_name": "Sequential", "config": {"layers": [1, 2, 3]}}, r"layer 0 must be an object, got int 1"),
    (_config(("LSTM", {"units": 4}), input_shape=[None]), r"layer 0 \(InputLayer\) batch_shape must be a list"),
    ({"class_name": "Sequential", "config": {"layers": [{"class_name": "InputLayer", "config": {"batch_shape": None}},
                                                        {"class_name": "LSTM", "config": {"units": 4}}]}},
     r"layer 0 \(InputLayer\) batch_shape must be a list \[batch, size, \.\.\.\], got null"),
    (_config(("LSTM", {"units": "4"})), r"layer 'lstm' \(LSTM\): units must be a positive integer, got '4'"),
    (_config(("LSTM", {"units": 4, "dropout": "x"})), r"layer 'lstm' \(LSTM\): dropout must be a finite number"),
    (_config(("Bidirectional", {"layer": [1], "merge_mode": "concat"})),
     r"layer 'bidirectional' \(Bidirectional\) 'layer' must be an object, got list"),
    (_config(("Dropout", {"rate": 2})), r"layer 'dropout' \(Dropout\): rate must lie in \[0, 1\)"),
    ({"class_name": "Sequential", "config": None}, r"the Sequential's config must be an object, got null"),
    (_config(("LSTM", {"units": 4}), input_shape=(None, 5, None)),
     r"layer 'lstm' \(LSTM\): cannot be built for inputs of an unknown number of features \(5, None\)"),
    (_config(("Dense", {"units": 2}), input_shape=(None, None)),
     r"layer 'dense' \(Dense\): cannot make its kernel of shape \(None, 2\)"),
    (_config(("LSTM", {"units": 2**62})), r"layer 'lstm' \(LSTM\): its kernel of shape \(3, 18446744073709551616\) is "
                                          r"too large to exist"),
    ('{"class_name": "Sequential", "config": ' + "[" * 100000 + "]" * 100000 + "}", r"nested too deeply"),
    ('{"class_name": "Sequential", "config": ' + "[" * 100 + "]" * 100 + "}", r"nested more than 64 levels"),
], ids=["layers-ints", "short-shape", "null-shape", "units-string", "dropout-string", "bidirectional-list",
        "rate", "null-config", "unknown-features", "unknown-dense-input", "units-2**62", "deep", "nested"])
def test_crafted_configs_are_refused_naming_the_file_and_entry(tmp_path, weights, config, message, capsys):
    path = _keras(tmp_path, weights, config=config)
    with pytest.raises(ValueError, match=r"model\.keras(:config\.json)?: " + message):
        load_keras(path)
    assert _exit_code(["export", str(path), "--format", "onnx", "--out", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.keras" in err, err


def test_an_unsupported_class_name_of_any_type_is_named(tmp_path, weights):
    with pytest.raises(UnsupportedError, match=r"layer 'x' is a Keras \['LSTM'\]"):
        load_keras(_keras(tmp_path, weights, config={"class_name": "Sequential", "config": {"layers": [
            {"class_name": ["LSTM"], "config": {"name": "x"}}]}}))


# ---- fuzzing -------------------------------------------------------------------------------

FUZZ_CASES = 60


def _mutated_config(config, rng):
    """``config`` with one value somewhere replaced by a hostile one."""
    config = json.loads(json.dumps(config))
    hostile = [None, -1, 0, 2**40, 1e308, "x" * 100, [], {}, [None], True, [1, 2], {"class_name": 1}]
    node = config
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = keys[int(rng.integers(len(keys)))]
        if isinstance(node[key], (dict, list)) and node[key] and rng.random() < 0.7:
            node = node[key]
            continue
        node[key] = hostile[int(rng.integers(len(hostile)))]
        return config


def _mutated_h5(f, rng, weights):
    """One hostile change to an open weights file: a dataset's declared shape or type, an
    attribute, a dataset moved, or a link."""
    path = list(weights)[int(rng.integers(len(weights)))]
    kind = int(rng.integers(5))
    if kind == 0:
        del f[path]
        f.create_dataset(path, shape=tuple(int(d) for d in rng.integers(0, 200_000, rng.integers(0, 4))),
                         dtype=np.float32)
    elif kind == 1:
        del f[path]
        f.create_dataset(path, shape=weights[path].shape, dtype=[np.int64, np.complex64, "S3"][int(rng.integers(3))])
    elif kind == 2:
        f[path].attrs["size"] = rng.integers(0, 2**62, 4)
        f.attrs["keras_version"] = "x" * int(rng.integers(1, 100_000))
    elif kind == 3:
        f.move(path, path.rsplit("/", 1)[0] + "/7")
    else:
        del f[path]
        f[path] = h5py.SoftLink("/" + path)  # a link to itself


def _fuzz_files(tmp_path, weights, rng):
    """Files mutated in their config, their HDF5 structure, their HDF5 bytes, their zip bytes."""
    clean_h5 = _write_h5(tmp_path / "clean.h5", weights)
    clean = _write_keras(tmp_path / "clean.keras", LSTM_DENSE, clean_h5).read_bytes()
    for i in range(FUZZ_CASES):
        path = tmp_path / f"fuzz{i}.keras"
        kind = i % 4
        if kind == 0:
            _write_keras(path, _mutated_config(LSTM_DENSE, rng), clean_h5)
        elif kind == 1:
            _write_keras(path, LSTM_DENSE, _write_h5(tmp_path / f"fuzz{i}.h5", weights,
                                                     lambda f: _mutated_h5(f, rng, weights)))
        elif kind == 2:
            h5 = bytearray(clean_h5.read_bytes())
            for j in rng.integers(0, len(h5), rng.integers(1, 16)):
                h5[j] = int(rng.integers(256))
            (tmp_path / f"fuzz{i}.h5").write_bytes(bytes(h5))
            _write_keras(path, LSTM_DENSE, tmp_path / f"fuzz{i}.h5")
        else:
            data = bytearray(clean)
            for j in rng.integers(0, len(data), rng.integers(1, 9)):
                data[j] ^= 1 << int(rng.integers(8))
            path.write_bytes(bytes(data))
        yield path


def test_mutated_keras_files_are_refused_cleanly_within_the_memory_cap(tmp_path, weights):
    """Every mutation ends in a model of the original shapes (a harmless change; a byte of a
    weight changed is a changed weight, HDF5 keeps no checksum) or a ValueError naming the file;
    none raises anything else or passes 1 GiB (run under that cap)."""
    paths = [str(p) for p in _fuzz_files(tmp_path, weights, np.random.default_rng(29))]
    shapes = [list(a.shape) for a in weights.values()]
    outcomes = run_capped(f"""
        from rnnlab.interop import load_keras
        outcomes = {{"refused": 0, "loaded": 0, "other": []}}
        for path in {paths!r}:
            try:
                weights = load_keras(path).get_weights()
            except Exception as err:
                if isinstance(err, ValueError) and path in str(err):
                    outcomes["refused"] += 1
                else:
                    outcomes["other"].append(f"{{path}}: {{type(err).__name__}}: {{err}}")
                continue
            if [list(w.shape) for w in weights] == {shapes!r}:
                outcomes["loaded"] += 1
            else:
                outcomes["other"].append(f"{{path}}: loaded weights of other shapes")
        print(json.dumps(outcomes))
    """, imports="import numpy, h5py, rnnlab")
    assert outcomes["other"] == []
    assert outcomes["refused"] + outcomes["loaded"] == FUZZ_CASES and outcomes["refused"] >= FUZZ_CASES // 2
