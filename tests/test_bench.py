"""rnnlab.bench and `rnnlab bench`: the figures are consistent, the FLOP count is right.

Tiny configs, one or two steps: these tests check the bookkeeping, never the speed.
"""
from __future__ import annotations

import json

import pytest

from rnnlab import bench
from rnnlab.bench import BenchConfig, matmul_flops, run_benchmark

TINY = dict(vocab=11, emb=5, hidden=6, layers=2, batch=3, bptt=4)
PROMISED = ["config", "rnnlab_train_tok_s", "torch_train_tok_s", "ratio_train", "rnnlab_infer_tok_s",
            "torch_infer_tok_s", "ratio_infer", "blas"]


def _has_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def test_flops_by_hand():
    # LSTM (G=4), vocab 7, emb 3, hidden 4, 2 layers, batch 2, bptt 5. Per token, forward:
    #   layer 1: x W  3*16 = 48 and h U 4*16 = 64;  layer 2: 4*16 + 4*16 = 128;  decoder 4*7 = 28
    #   -> 268 multiply-adds; 2 FLOPs each, 10 tokens: 5360. Training: forward + 2x backward.
    cfg = BenchConfig("hand", vocab=7, emb=3, hidden=4, layers=2, batch=2, bptt=5)
    assert matmul_flops(cfg, "lstm", train=False) == 5360
    assert matmul_flops(cfg, "lstm", train=True) == 3 * 5360
    # GRU (G=3): 3*12 + 4*12 + 4*12 + 4*12 + 28 = 208 -> 4160
    assert matmul_flops(cfg, "gru", train=False) == 4160
    # the per-GEMM shape list the GEMM-only timing runs adds up to the same count
    for cell in ("lstm", "gru"):
        for train in (False, True):
            shapes = bench.configs.gemm_shapes(cfg, cell, train)
            assert sum(2 * m * k * n * rep for m, k, n, rep, _ in shapes) == matmul_flops(cfg, cell, train)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_run_benchmark_tiny(cell):
    from rnnlab import backend

    res = run_benchmark(TINY, cell=cell, steps=2, warmup=1, settle=0)
    on_cpu = backend.backend_name() == "numpy"   # the suite also runs with RNNLAB_BACKEND=cupy
    assert res["device"] == ("cpu" if on_cpu else "cuda")
    for key in PROMISED + ["train_flops", "openblas_env", "notes"] + (["gemm_peak_gflops", "gemm_only_ms"] * on_cpu):
        assert key in res, key
    assert res["config"] == "custom" and res["cell"] == cell
    assert res["tokens_per_step"] == 3 * 4
    assert res["train_flops"] == matmul_flops(TINY, cell, True)
    assert res["rnnlab_train_tok_s"] > 0 and res["rnnlab_infer_tok_s"] > 0
    # tokens/s is tokens per median step time; GFLOP/s is FLOPs per the same time
    step_s = res["rnnlab_train_step_ms"] / 1e3
    assert res["rnnlab_train_tok_s"] == pytest.approx(12 / step_s)
    assert res["rnnlab_train_gflops"] == pytest.approx(res["train_flops"] / step_s / 1e9)
    assert set(res["openblas_env"]) == {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"}
    # how busy the machine was is recorded, never asserted (other processes decide it; on a
    # loaded machine the tick-counted share of a short window can even pass 1): only that it is
    # a share, and that a busy machine's figures carry a note saying so
    share = res["foreign_cpu_share"]
    assert share is None or (isinstance(share, float) and share >= 0.0)
    assert (share is not None and share > 0.05) == any("other processes used" in n for n in res["notes"])
    assert "name" in res["blas"]
    # the result says which loops ran: the fused kernels exactly when the layers use them
    from rnnlab.layers import LSTM, fast
    from rnnlab.layers.fast import fused
    assert res["fused_kernels"] is (fast.runs_fused(LSTM(1)) and on_cpu)
    assert res["compiled_loops"] is (fast.runs_compiled(LSTM(1)) and on_cpu)   # opt-in: RNNLAB_COMPILED=1
    assert res["versions"]["numba"] == getattr(fused.numba, "__version__", None)
    json.dumps(res)  # the CLI prints it as JSON
    if _has_torch():
        for phase in ("train", "infer"):
            assert res[f"ratio_{phase}"] == pytest.approx(res[f"rnnlab_{phase}_tok_s"] / res[f"torch_{phase}_tok_s"])
        # both sides train the same task from U(-0.1, 0.1): the loss starts near log(vocab)
        assert abs(res["rnnlab_train_loss"] - res["torch_train_loss"]) < 0.2
    else:
        assert res["torch_train_tok_s"] is None and res["ratio_train"] is None


def test_each_timed_step_starts_after_the_settle_pause(monkeypatch):
    """The other library's threads spin for a while after it returns: every timed step (not the
    warm-up ones) must start after a sleep of ``settle`` seconds, and the result records it."""
    slept = []
    monkeypatch.setattr(bench.measure.time, "sleep", slept.append)
    calls = []
    times = bench.interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")},
                               warmup=1, steps=3, settle=0.25)
    assert calls == ["a", "b", "a", "b", "b", "a", "a", "b"]   # warm-up, then alternating order
    assert slept == [0.25] * 6 and all(len(t) == 3 for t in times.values())
    res = run_benchmark(TINY, cell="lstm", steps=1, warmup=0, gemm=False, use_torch=False, settle=0.25)
    assert res["settle_s"] == 0.25 and slept[6:] == [0.25] * 2   # one training, one inference step
    with pytest.raises(ValueError, match="settle must be >= 0"):
        run_benchmark(TINY, settle=-1)


def test_foreign_share_from_two_snapshots(monkeypatch):
    """The share of the CPUs other processes took: the machine's busy seconds minus this
    process's own, per core and second of wall time; clipped at 0, None when unknown."""
    monkeypatch.setattr(bench.measure.os, "cpu_count", lambda: 2)
    share = bench.measure.foreign_share
    # 2 s of wall time on 2 cores; the machine was busy 3 s, 1 s of it this process's
    assert share((10.0, 5.0, 100.0), (13.0, 6.0, 102.0)) == pytest.approx(0.5)
    assert share((10.0, 5.0, 100.0), (11.0, 6.0, 102.0)) == 0.0        # a quiet machine
    assert share((10.0, 5.0, 100.0), (10.5, 6.0, 102.0)) == 0.0        # tick rounding: never < 0
    assert share(None, (1.0, 1.0, 1.0)) is None and share((1.0, 1.0, 1.0), (1.0, 1.0, 1.0)) is None
    snap = bench.measure.cpu_snapshot()
    assert snap is None or (len(snap) == 3 and all(v >= 0 for v in snap))


def test_without_torch(monkeypatch):
    monkeypatch.setattr(bench.torch_side, "import_torch", lambda: None)
    res = run_benchmark(TINY, cell="lstm", steps=1, warmup=0, gemm=False)
    assert res["torch_train_tok_s"] is None and res["ratio_train"] is None and res["ratio_infer"] is None
    assert res["rnnlab_train_tok_s"] > 0
    assert any("PyTorch is not installed" in note for note in res["notes"])
    assert "PyTorch is not installed" in bench.format_table([res])


def test_layer_stack_matches_shape():
    # the public-layer variant of the benchmark model has the LanguageModel's parameter count
    cfg = BenchConfig("t", **TINY)
    stack = bench.build_rnnlab_model(cfg, "lstm", model="layers")
    import numpy as np
    logits = stack.forward(np.zeros((3, 4), dtype=np.int64))
    assert logits.shape == (3, 4, 11)
    expected = 11 * 5 + (5 * 24 + 6 * 24 + 24) + (6 * 24 + 6 * 24 + 24) + 6 * 11 + 11
    assert sum(p.size for p in stack.params) == expected
    lm = bench.build_rnnlab_model(cfg, "lstm", model="lm")
    lm.forward(np.zeros((3, 4), dtype=np.int64))
    assert sum(p.size for p in lm.params) == expected


def test_layer_stack_carries_and_resets_its_state():
    # stateful layers: a second window starts from the first one's last state, reset_states
    # zeroes it, so the runner's reset gives the first window's logits back
    import numpy as np
    from rnnlab.bench.rnnlab_side import reset_states

    cfg = BenchConfig("t", **TINY)
    ids = np.arange(12, dtype=np.int64).reshape(3, 4) % 11
    for model in ("layers", "lm"):
        net = bench.build_rnnlab_model(cfg, "gru", model=model)
        first = net.forward(ids).copy()
        assert not np.allclose(net.forward(ids), first)
        reset_states(net)
        np.testing.assert_array_equal(net.forward(ids), first)


def test_cell_names_come_from_the_kinds_table():
    assert bench.matmul_flops(TINY, "LSTM") == bench.matmul_flops(TINY, "lstm")
    with pytest.raises(ValueError, match="the benchmark runs cells"):
        bench.matmul_flops(TINY, "SimpleRNN")
    with pytest.raises(ValueError, match="unknown recurrent cell"):
        bench.matmul_flops(TINY, "transformer")


def test_memory_subprocess():
    mem = bench.measure_memory(TINY, "lstm", side="rnnlab")
    assert mem["peak_mb"] > 10  # a Python with NumPy: tens of MB at least
    assert 0 <= mem["delta_mb"] < mem["peak_mb"]


def test_bad_config_names_it():
    with pytest.raises(ValueError, match="unknown benchmark config 'nope'"):
        run_benchmark("nope")
    with pytest.raises(ValueError, match="hidden must be >= 1"):
        BenchConfig("bad", 10, 4, 0, 1, 2, 3)


def test_cli_json(capsys, monkeypatch):
    from rnnlab.cli import main

    # the named configs take seconds per step on 2 cores: register a tiny one for the CLI
    monkeypatch.setitem(bench.CONFIGS, "tiny", BenchConfig("tiny", **TINY))
    rc = main(["bench", "--config", "tiny", "--cell", "gru", "--steps", "1", "--warmup", "0",
               "--no-memory", "--json"])
    assert rc == 0
    out = capsys.readouterr().out.strip().splitlines()
    res = json.loads(out[-1])
    for key in PROMISED:
        assert key in res, key
    assert res["config"] == "tiny" and res["cell"] == "gru" and res["bptt"] == 4
    rows = [[c.strip() for c in line.split("|")[1:3]] for line in out if line.startswith("|")]
    assert ["tiny", "gru"] in rows  # the table is printed too


def test_cli_names_the_configs():
    from rnnlab.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["bench", "--config", "all", "--cell", "both"])
    assert args.config == "all" and args.cell == "both"
    with pytest.raises(SystemExit):
        parser.parse_args(["bench", "--config", "ptb-huge"])


def _has_cupy():
    try:
        import cupy  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.skipif(_has_cupy(), reason="CuPy is installed: the missing-CuPy message cannot show")
def test_cuda_device_without_cupy_is_one_clear_error(capsys):
    from rnnlab import backend
    from rnnlab.cli import main

    with pytest.raises(RuntimeError, match=r"needs CuPy: pip install 'rnnlab\[gpu\]'"):
        run_benchmark(TINY, steps=1, warmup=0, device="cuda")
    assert backend.backend_name() == "numpy"
    rc = main(["bench", "--config", "long-small", "--device", "cuda", "--no-memory", "--steps", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc != 0 and err[-1].startswith("rnnlab bench: error:") and "rnnlab[gpu]" in err[-1]


@pytest.mark.skipif(_has_cupy(), reason="CuPy is installed: the missing-CuPy message cannot show")
def test_cupy_backend_from_the_environment_without_cupy_names_the_extra():
    import os
    import subprocess
    import sys

    env = {**os.environ, "RNNLAB_BACKEND": "cupy"}
    proc = subprocess.run([sys.executable, "-c", "import rnnlab"], env=env, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "backend 'cupy' needs CuPy: pip install 'rnnlab[gpu]' on a machine with CUDA" in proc.stderr


def test_cuda_path_on_the_numpy_stand_in(monkeypatch):
    """The CuPy branch of the benchmark, run on benchmarks/gpu_rehearsal (NumPy posing as CuPy):
    rnnlab on the 'cupy' backend, PyTorch on CUDA only where it has it, the NumPy GEMM and host
    memory figures skipped with a note, the backend restored afterwards."""
    import pathlib
    import sys

    from rnnlab import backend

    if _has_cupy():
        pytest.skip("a real CuPy is installed")
    stand_in = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_rehearsal"
    monkeypatch.syspath_prepend(str(stand_in))
    try:
        res = run_benchmark(TINY, cell="lstm", steps=1, warmup=0, memory=True, settle=0, device="cuda")
    finally:
        for name in ("cupy", "cupyx"):   # no later test may find the stand-in
            sys.modules.pop(name, None)
    assert backend.backend_name() == "numpy"
    assert res["backend"] == "cupy" and res["device"] == "cuda" and res["fused_kernels"] is False
    assert res["versions"]["cupy"] == "0+numpy-stand-in" and "stand-in" in res["machine"]["gpu"]
    assert "gemm_only_ms" not in res and "rnnlab_rss_delta_mb" not in res
    assert any("GEMM-only figures" in n for n in res["notes"]) and any("host RSS" in n for n in res["notes"])
    assert res["rnnlab_train_tok_s"] > 0
    if _has_torch():
        import torch
        assert res["torch_device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    # and back on the CPU, the result says so
    assert run_benchmark(TINY, steps=1, warmup=0, gemm=False, use_torch=False, settle=0)["device"] == "cpu"
