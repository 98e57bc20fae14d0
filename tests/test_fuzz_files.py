"""Fuzzing the files rnnlab reads (issue 12): random byte strings and mutated valid files as a
checkpoint, a run's config.json and vocab.json. Every case must end in a clean refusal
(``CheckpointError`` from the library, one line and exit status 2 from the CLI) or, for a
mutation that changed nothing that matters, in the original weights, and never allocate much
(tracemalloc peak per case)."""
import json
import tracemalloc

import numpy as np
import pytest

import rnnlab as rl
from rnnlab import layers as L
from rnnlab.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from rnnlab.cli import main

CASES = 40
PEAK_MIB = 32


def _bounded(fn):
    """fn()'s result, asserting its peak of traced memory stays under PEAK_MIB."""
    tracemalloc.start()
    try:
        return fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < PEAK_MIB * 2**20, f"peak {peak / 2**20:.1f} MiB"


def _mutations(good: bytes, rng):
    """Random byte strings, then valid bytes flipped, cut, spliced and duplicated."""
    for _ in range(CASES // 4):
        yield bytes(rng.integers(0, 256, rng.integers(0, 2048), dtype=np.uint8))
    for _ in range(CASES // 4):
        yield b"PK\x03\x04" + bytes(rng.integers(0, 256, rng.integers(0, 512), dtype=np.uint8))
    for _ in range(CASES):
        data = bytearray(good)
        kind = rng.integers(4)
        if kind == 0:
            for i in rng.integers(0, len(data), rng.integers(1, 9)):
                data[i] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            data = data[:rng.integers(0, len(data))]
        elif kind == 2:
            i = int(rng.integers(0, len(data)))
            data[i:i] = bytes(rng.integers(0, 256, rng.integers(1, 64), dtype=np.uint8))
        else:
            i, j = sorted(int(v) for v in rng.integers(0, len(data), 2))
            data = data[:j] + data[i:]
        yield bytes(data)


def test_random_and_mutated_checkpoints_are_refused_cleanly(tmp_path):
    model = rl.Sequential([L.Input((3, 4)), L.GRU(6, seed=0), L.Dense(2, seed=1)])
    good = save_checkpoint(tmp_path / "good.npz", model).read_bytes()
    path = tmp_path / "fuzz.npz"
    outcomes = {"refused": 0, "same": 0}
    for data in _mutations(good, np.random.default_rng(12)):
        path.write_bytes(data)
        try:
            loaded = _bounded(lambda: load_checkpoint(path))
        except CheckpointError as err:
            assert "fuzz.npz" in str(err)
            outcomes["refused"] += 1
            continue
        for a, b in zip(loaded.model.get_weights(), model.get_weights()):  # a harmless change only
            np.testing.assert_array_equal(a, b)
        outcomes["same"] += 1
    assert outcomes["refused"] >= CASES  # (most mutations break something)


@pytest.fixture(scope="module")
def lm_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    text = folder / "abc.txt"
    text.write_text("the cat sat on the mat\n" * 40, encoding="utf-8")
    run = folder / "run"
    assert main(["train", "lm", "--text", str(text), "--level", "char", "--hidden", "8", "--emb", "4",
                 "--bptt", "6", "--batch", "2", "--epochs", "1", "--out", str(run), "--no-progress"]) == 0
    return run


def _json_mutations(good: dict, rng):
    """Valid JSON with keys dropped or values replaced by values of other types."""
    values = [None, True, -1, 0, 10**12, 1e308, float("nan"), "", "x" * 300, [], [1, "a"], {}, {"a": [None]}]
    for _ in range(CASES):
        data = json.loads(json.dumps(good))
        keys = list(data)
        key = keys[int(rng.integers(len(keys)))]
        if rng.random() < 0.3:
            del data[key]
        else:
            data[key] = values[int(rng.integers(len(values)))]
        yield json.dumps(data).encode()
    if "itos" in good:  # a well-formed vocabulary that is not the model's
        yield json.dumps({**good, "itos": good["itos"][:len(good["specials"]) + 1]}).encode()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["config.json", "vocab.json"])
def test_random_and_mutated_run_files_exit_2_in_one_line(lm_run, capsys, name):
    path = lm_run / name
    good = path.read_bytes()
    rng = np.random.default_rng(3)
    cases = [*_mutations(good, rng), *_json_mutations(json.loads(good), rng)]
    try:
        for data in cases:
            path.write_bytes(data)
            capsys.readouterr()
            code = _bounded(lambda: main(["sample", str(lm_run), "--length", "3"]))
            err = capsys.readouterr().err
            if code == 0:
                continue  # a change that does not matter to sampling (e.g. a training setting)
            assert code == 2 and err.count("\n") == 1 and name in err, (data[:120], err)
    finally:
        path.write_bytes(good)
