"""`rnnlab bench --load` (the CPU hog, the thread decision under it) and `--config stream` (batch-1
step latency): the bookkeeping, never the speed."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from rnnlab import bench, threads
from rnnlab.bench import load, stream
from rnnlab.bench.run import run_benchmark
from rnnlab.cli import main

TINY = dict(vocab=11, emb=5, hidden=6, layers=1, batch=3, bptt=4)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def test_the_hogs_run_inside_are_stopped_after_and_each_ends_by_itself(monkeypatch):
    started = []
    popen = load.subprocess.Popen
    monkeypatch.setattr(load.subprocess, "Popen", lambda *a, **k: started.append(popen(*a, **k)) or started[-1])
    monkeypatch.setattr(load, "HOG_START_S", 0.0)
    with load.cpu_hog(1, limit_s=0.3):
        assert started[0].poll() is None       # busy while the block runs
        deadline = time.monotonic() + 30
        while started[0].poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert started[0].returncode == 0      # it ended by itself, before being stopped
    with load.cpu_hog(1, limit_s=60):
        pass
    assert started[1].poll() is not None       # stopped when the block ended


def test_a_loaded_run_decides_its_threads_under_the_hog_and_restores_the_decision(monkeypatch):
    seen = {}
    monkeypatch.setattr(threads, "available_cpus", lambda: 2)
    real_decide = threads.decide

    def decide(requested=None, environ=None):
        seen["runnable"] = threads.runnable_others()   # the hogs are running when the policy looks
        return real_decide(requested, environ)
    monkeypatch.setattr(threads, "decide", decide)
    torch = _torch()
    torch_default = torch.get_num_threads() if torch is not None else None
    before = threads.current()
    res = run_benchmark(TINY, cell="lstm", steps=1, warmup=0, gemm=False, settle=0, load=True, threads=1)
    assert res["load"]["hog_processes"] == 2
    assert res["load"]["thread_decision"]["threads"] == 1 and res["load"]["thread_decision"]["source"] == "--threads"
    assert res["thread_decision"] == res["load"]["thread_decision"]
    assert res["torch_threads"] == torch_default    # PyTorch keeps its default under the load
    assert threads.current() == before
    if seen["runnable"] is not None:
        assert seen["runnable"] >= 2


STREAM_KEYS = ["rnnlab_median_us", "rnnlab_p99_us", "torch_cells_median_us", "torch_rnn_median_us",
               "onnxruntime_median_us", "onnxruntime_p99_us", "products_median_us", "ratio_torch",
               "ratio_onnxruntime", "step_over_products", "torch_fastest", "steps_per_side", "rnnlab_stream_median_us",
               "stream_ratio_torch", "stream_ratio_onnxruntime", "stream_step_over_products"]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_stream_row_holds_every_side_and_ratios_of_the_medians(cell):
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    res = stream.run_stream(cell, hidden=8, layers=2, rounds=2, warmup=1, per_round=3, threads=1, torch_threads=1)
    for key in STREAM_KEYS:
        assert res[key] is not None, key
    assert res["steps_per_side"] == 6 and res["batch"] == 1 and res["cell"] == cell
    assert res["notes"] == []
    fastest = min(res["torch_cells_median_us"], res["torch_rnn_median_us"])
    assert res[f"torch_{res['torch_fastest']}_median_us"] == fastest
    assert res["ratio_torch"] == pytest.approx(fastest / res["rnnlab_median_us"])
    assert res["ratio_onnxruntime"] == pytest.approx(res["onnxruntime_median_us"] / res["rnnlab_median_us"])
    assert res["step_over_products"] == pytest.approx(res["rnnlab_median_us"] / res["products_median_us"])
    assert res["stream_ratio_torch"] == pytest.approx(fastest / res["rnnlab_stream_median_us"])
    assert res["stream_ratio_onnxruntime"] == pytest.approx(res["onnxruntime_median_us"] / res["rnnlab_stream_median_us"])
    for side in stream.SIDES:
        assert res[f"{side}_p99_us"] >= res[f"{side}_median_us"] > 0


def test_the_sides_run_the_same_model_and_a_different_one_is_caught():
    torch = pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    import tempfile

    model = stream._rnnlab_model("lstm", 8, 2, seed=0)
    steps = {"rnnlab": stream.rnnlab_step(model), "rnnlab_stream": stream.stream_step(model)}
    steps["torch_cells"], steps["torch_rnn"] = stream.torch_steps(torch, model, 1)
    with tempfile.TemporaryDirectory() as folder:
        steps["onnxruntime"] = stream.onnxruntime_step(model, folder, 1)[0]
        stream.check_same_step(steps)   # raises if a side is not the same model
        # every side carries its state: a second step still agrees
        stream.check_same_step(steps)
    steps = {"rnnlab": stream.rnnlab_step(model), "products": None,
             "onnxruntime": lambda: np.zeros(stream.STREAM_VOCAB, np.float32) + 1.0}
    with pytest.raises(AssertionError, match="onnxruntime's first logits differ"):
        stream.check_same_step(steps)


def test_the_stream_latencies_are_the_median_and_p99():
    res = stream.latency([1e-6 * v for v in range(1, 101)])
    assert res["median_us"] == pytest.approx(50.5) and res["p99_us"] == pytest.approx(99.01)
    order = []
    stream.time_in_rounds({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, rounds=2,
                          per_round=2, warmup_rounds=0)
    assert order == ["a", "a", "b", "b", "b", "b", "a", "a"]   # each side in a row, the order alternating


def test_cli_stream_json_and_table(capsys, monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.setattr(stream, "STREAM_HIDDEN", (8,))
    monkeypatch.setattr(stream, "STREAM_LAYERS", (1,))
    monkeypatch.setattr(stream, "STREAM_ROUND", 2)
    assert main(["bench", "--config", "stream", "--cell", "gru", "--steps", "1", "--warmup", "0", "--json"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    res = json.loads(out[-1])
    assert [(r["cell"], r["hidden"], r["layers"]) for r in res["results"]] == [("gru", 8, 1)]
    assert any(line.startswith("| gru | 8 | 1 |") for line in out)
    assert set(STREAM_KEYS) <= set(res["results"][0])


def test_cli_load_flag_reaches_the_benchmark(capsys, monkeypatch):
    monkeypatch.setitem(bench.CONFIGS, "tiny", bench.BenchConfig("tiny", **TINY))
    assert main(["bench", "--config", "tiny", "--load", "--steps", "1", "--warmup", "0", "--no-memory",
                 "--threads", "1", "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["load"]["hog_processes"] == threads.available_cpus()
    assert res["load"]["thread_decision"]["threads"] == 1
