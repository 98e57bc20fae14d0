"""rnnlab.threads: the thread decision (overrides, the policy under load, cgroup quotas) and that
the thread count never changes the numbers."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnlab import threads
from rnnlab.checkpoint import load_checkpoint
from rnnlab.cli import main

SRC = str(Path(__file__).resolve().parents[1] / "src")
CLI = "import sys; from rnnlab.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture
def machine(monkeypatch):
    """A machine of ``cpus`` CPUs at 1-minute load ``load`` with ``runnable`` other processes
    runnable now: set(cpus, load, runnable)."""
    def set_machine(cpus, load, runnable):
        monkeypatch.setattr(threads, "available_cpus", lambda: cpus)
        monkeypatch.setattr(threads.os, "cpu_count", lambda: cpus)
        monkeypatch.setattr(threads.os, "getloadavg", lambda: (load, load, load))
        monkeypatch.setattr(threads, "runnable_others", lambda: runnable)
    return set_machine


@pytest.mark.parametrize("cpus, load, runnable, expected", [
    (2, 0.1, 0, 2),     # idle
    (2, 0.5, 0, 2),     # half a core busy: both still worth it
    (2, 1.0, 1, 1),     # another job on one core: a second thread would wait for it
    (2, 13.6, 11, 1),   # oversubscribed
    (2, 0.2, 2, 1),     # a hog started a second ago: the load average has not seen it, the runnable count has
    (2, 1.3, 0, 2),     # a job ended a second ago (the command before): the load average still counts it, not us
    (2, 1.3, None, 1),  # no runnable count (not Linux): the load average stands in
    (8, 3.0, 3, 5),
    (8, 30.0, 28, 1),
])
def test_the_policy_leaves_the_cpus_other_processes_keep_busy(machine, cpus, load, runnable, expected):
    machine(cpus, load, runnable)
    decision = threads.decide(environ={})
    assert (decision.threads, decision.source, decision.cpus) == (expected, "policy", cpus)
    assert decision.load1 == load and decision.runnable == runnable
    assert f"{cpus} CPUs available" in decision.describe()


def test_overrides_in_order_flag_variable_blas_setting_at_start(machine):
    machine(2, 13.6, 11)
    env = {"RNNLAB_THREADS": "3", "OPENBLAS_NUM_THREADS": "4", "OMP_NUM_THREADS": "5"}
    assert (threads.decide(2, env).threads, threads.decide(2, env).source) == (2, "--threads")
    assert (threads.decide(None, env).threads, threads.decide(None, env).source) == (3, "RNNLAB_THREADS")
    del env["RNNLAB_THREADS"]
    started = threads.decide(None, env)
    assert (started.threads, started.source, started.blas) == (4, "OPENBLAS_NUM_THREADS", "left as started")
    del env["OPENBLAS_NUM_THREADS"]
    assert threads.decide(None, env).source == "OMP_NUM_THREADS"
    with pytest.raises(ValueError, match="RNNLAB_THREADS must be a positive integer"):
        threads.decide(None, {"RNNLAB_THREADS": "0"})


def test_a_bad_rnnlab_threads_is_one_line_and_exit_2(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("RNNLAB_THREADS", "two")
    assert main(["summary", str(tmp_path / "nothing")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "RNNLAB_THREADS must be a positive integer" in err[0]


def test_cgroup_quotas_v2_and_v1(tmp_path):
    proc = tmp_path / "cgroup"
    proc.write_text("0::/job\n", encoding="ascii")
    (tmp_path / "job").mkdir()
    (tmp_path / "job" / "cpu.max").write_text("150000 100000\n", encoding="ascii")
    assert threads.cgroup_cpu_quota(str(tmp_path), str(proc)) == 1.5
    (tmp_path / "job" / "cpu.max").write_text("max 100000\n", encoding="ascii")
    assert threads.cgroup_cpu_quota(str(tmp_path), str(proc)) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu" / "job").mkdir(parents=True)
    proc.write_text("4:cpu,cpuacct:/job\n", encoding="ascii")
    (v1 / "cpu" / "job" / "cpu.cfs_quota_us").write_text("200000\n", encoding="ascii")
    (v1 / "cpu" / "job" / "cpu.cfs_period_us").write_text("100000\n", encoding="ascii")
    assert threads.cgroup_cpu_quota(str(v1), str(proc)) == 2.0
    (v1 / "cpu" / "job" / "cpu.cfs_quota_us").write_text("-1\n", encoding="ascii")
    assert threads.cgroup_cpu_quota(str(v1), str(proc)) is None
    assert 1 <= threads.available_cpus() <= (os.cpu_count() or 1)


def test_one_or_two_threads_train_the_same_bits(tmp_path, word_text):
    """A tiny LSTM trained in two processes, --threads 1 and --threads 2, on the compiled loops
    (batch 8: two row blocks, run on two threads or one) with products large enough for
    OpenBLAS to split: the same weights, bit for bit; each run logs and records its decision."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", ""), "RNNLAB_COMPILED": "1"}
    weights = {}
    for n in (1, 2):
        out = tmp_path / f"threads{n}"
        argv = ["train", "lm", "--text", str(word_text), "--hidden", "64", "--emb", "32", "--layers", "1",
                "--bptt", "16", "--batch", "8", "--epochs", "2", "--seed", "3", "--no-progress",
                "--out", str(out), "--threads", str(n)]
        done = subprocess.run([sys.executable, "-c", CLI, *argv], env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert sum("threads: " in line for line in done.stderr.splitlines()) == 1
        recorded = json.loads((out / "results.json").read_text())["threads"]
        assert (recorded["threads"], recorded["source"]) == (n, "--threads")
        weights[n] = load_checkpoint(out / "last.npz").model.get_weights()
    assert len(weights[1]) == len(weights[2])
    for a, b in zip(weights[1], weights[2]):
        np.testing.assert_array_equal(a, b)
